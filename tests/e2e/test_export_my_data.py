"""export_my_data over HTTP (gunicorn): the caller's own data as one JSON document,
compared field by field with the rows in PostgreSQL read directly, its uploads those of
the `uploads` table (SPEC §16), and with what the test sent, never with another answer of
the product; whose data it holds; and its refusals."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

from devtools.stack import BUCKET
from shared.web.auth import hash_guest_key
from tests.conftest import ALLOWED_ORIGIN
from tests.support import assert_error, guest_row, new_guest_key, register, rows, scalar

# What the test sends: objects, arrays, unicode, scalars, null, with and without a level.
RESPONSES = [
    (0, {"answer": "blue", "ms": 812, "nested": {"list": [1, 2.5, None, True], "empty": {}}}),
    (None, ["ünïcödé", "日本語", "😀", "ﷺ", "\u202eRTL", "e\u0301", 'quote" backslash\\ tab\t']),
    (3, None),
    (7, "just a string"),
    (2147483647, 12345678901234567890),
    # JSONB keeps numbers as numeric: 1.5e10 comes back as 15000000000, equal to what was sent.
    (None, {"deep": [[[[{"a": [False]}]]]], "float": -0.000123, "big": 1.5e10}),
]


def utc(moment: datetime) -> str:
    """The test's own RFC 3339 UTC text of a stored time (not the product's encoder)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def export(api, **credentials):
    answer = api.get("export_my_data", **credentials)
    assert answer.status_code == 200, answer.text
    return answer, answer.json()


def expected_document(db, where: str, **params) -> list[dict]:
    """The sessions of `where` (a condition on sessions s), from the tables: what the export
    must hold, in its order."""
    sessions = []
    for s in rows(db, f"SELECT * FROM sessions s WHERE {where} ORDER BY s.created_at DESC", **params):
        responses = rows(db, "SELECT * FROM responses WHERE session_id = :s ORDER BY created_at", s=s.id)
        mine = rows(db, "SELECT * FROM uploads WHERE session_id = :s ORDER BY uploaded_at, name", s=s.id)
        sessions.append(
            {
                "sessionId": str(s.id),
                "experimentId": s.experiment_id,
                "metadata": s.metadata,
                "createdAt": utc(s.created_at),
                "condition": s.condition,
                "outcome": s.outcome,
                "completedAt": utc(s.completed_at) if s.completed_at else None,
                "participant": None,  # sessions started without a platform participant
                "responses": [
                    {"responseId": str(r.id), "level": r.level, "data": r.data, "createdAt": utc(r.created_at)}
                    for r in responses
                ],
                "uploads": [
                    {"name": u.name, "contentType": u.content_type, "size": u.size, "uploadedAt": utc(u.uploaded_at)}
                    for u in mine
                ],
            }
        )
    return sessions


def new_session(api, experiment_id, metadata, **credentials) -> dict:
    answer = api.post("create_session", {"experimentId": experiment_id, "metadata": metadata}, **credentials)
    assert answer.status_code == 201, answer.text
    return answer.json()


def respond(api, session_id: str, level, data, **credentials) -> str:
    answer = api.post("submit_response", {"sessionId": session_id, "level": level, "data": data}, **credentials)
    assert answer.status_code == 201, answer.text
    return answer.json()["responseId"]


def upload(world, session_id: str, file_name: str, content: bytes, content_type: str) -> dict:
    item = world.upload(session_id, file_name, content, content_type)
    assert world.deliver(item).status_code < 300
    return item


def test_a_guests_export_is_what_was_stored_field_by_field(uploads_world, db, firestore):
    world, api = uploads_world, uploads_world.api
    key, other_key = new_guest_key(), new_guest_key()
    first = new_session(api, "study-1", {"lang": "de", "screen": [1920, 1080]}, guest=key)
    second = new_session(api, "study-2", {"note": "ünïcödé ✓"}, guest=key)
    sent = {first["sessionId"]: RESPONSES[:3], second["sessionId"]: RESPONSES[3:]}
    response_ids = {
        session_id: [respond(api, session_id, level, data, guest=key) for level, data in answers]
        for session_id, answers in sent.items()
    }
    photo = upload(world, first["sessionId"], "photo.png", b"\x89PNG" + b"\x00" * 300, "image/png")
    notes = upload(world, first["sessionId"], "notes ü.txt", b"hello", "text/plain")
    clip = upload(world, second["sessionId"], "clip.json", b'{"a": 1}', "application/json")
    # Another guest, with a session, a response and an upload of its own.
    other = new_session(api, "study-1", {"other": True}, guest=other_key)
    other_response = respond(api, other["sessionId"], 1, {"secret": "not yours"}, guest=other_key)
    upload(world, other["sessionId"], "other.png", b"\x89PNG", "image/png")
    # The uploads come from PostgreSQL's rows (SPEC §16): without their Firestore documents they stay.
    assert len(world.rows()) == 4
    for recorded in firestore.collection("uploads").stream():
        recorded.reference.delete()

    answer, document = export(api, guest=key)

    assert answer.headers["Content-Type"] == "application/json"
    assert answer.headers["Content-Disposition"] == 'attachment; filename="my-data.json"'
    assert answer.headers["Cache-Control"] == "no-store"
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    # Streamed: no length known up front, so gunicorn sends it chunked.
    assert answer.headers.get("Transfer-Encoding") == "chunked" and "Content-Length" not in answer.headers

    guest = guest_row(db, key)
    assert list(document) == ["visitorNumber", "userId", "guestId", "email", "displayName", "sessions"]
    assert (document["visitorNumber"], document["userId"], document["guestId"]) == (
        guest.visitor_number,
        None,
        str(guest.id),
    )
    assert (document["email"], document["displayName"]) == (None, None)
    assert document["sessions"] == expected_document(db, "s.guest_id = :g AND s.user_id IS NULL", g=guest.id)

    # And what the test itself sent and uploaded: newest session first, responses in order.
    assert [s["sessionId"] for s in document["sessions"]] == [second["sessionId"], first["sessionId"]]
    for session in document["sessions"]:
        assert set(session) == {
            *("sessionId", "experimentId", "metadata", "createdAt", "responses", "uploads"),
            *("condition", "outcome", "completedAt", "participant"),
        }
        assert [r["responseId"] for r in session["responses"]] == response_ids[session["sessionId"]]
        assert [(r["level"], r["data"]) for r in session["responses"]] == [
            (level, data) for level, data in sent[session["sessionId"]]
        ]
    assert document["sessions"][1]["metadata"] == {"lang": "de", "screen": [1920, 1080]}
    assert document["sessions"][0]["experimentId"] == "study-2"
    by_name = {u["name"]: u for s in document["sessions"] for u in s["uploads"]}
    assert set(by_name) == {photo["name"], notes["name"], clip["name"]}
    assert by_name[photo["name"]]["size"] == 304 and by_name[photo["name"]]["contentType"] == "image/png"
    assert by_name[notes["name"]] == {
        "name": f"sessions/{first['sessionId']}/notes ü.txt",
        "contentType": "text/plain",
        "size": 5,
        "uploadedAt": utc(datetime.fromisoformat(notes["timeCreated"].replace("Z", "+00:00"))),
    }
    assert [u["name"] for u in document["sessions"][1]["uploads"]] == [photo["name"], notes["name"]]

    # Nothing of the other guest; no key, no key hash, no bucket internals.
    text = answer.text
    for foreign in (other["sessionId"], other_response, "not yours", other["guestId"], "other.png", other_key):
        assert foreign not in text
    digest = hash_guest_key(key)
    for secret in (key, digest.hex(), base64.b64encode(digest).decode(), BUCKET):
        assert secret not in text


def test_a_user_who_claimed_a_guest_exports_both_and_nobody_elses(uploads_world, db, firestore, auth_emulator):
    world, api = uploads_world, uploads_world.api
    guest_key, stranger_key = new_guest_key(), new_guest_key()
    user, stranger = auth_emulator.new_user(), auth_emulator.new_user()
    as_guest = new_session(api, "before", {"as": "guest"}, guest=guest_key)
    guest_response = respond(api, as_guest["sessionId"], 1, {"step": "as a guest"}, guest=guest_key)
    upload(world, as_guest["sessionId"], "guest.png", b"\x89PNG guest", "image/png")
    own = new_session(api, "mine", {"as": "user"}, token=user.id_token)
    own_response = respond(api, own["sessionId"], None, ["as", "the", "user"], token=user.id_token)
    # Others in the same database: a guest and a user, each with a session, a response and an upload.
    foreign = [
        new_session(api, "x", {"who": "stranger guest"}, guest=stranger_key),
        new_session(api, "x", {"who": "stranger user"}, token=stranger.id_token),
    ]
    foreign_responses = [
        respond(api, foreign[0]["sessionId"], 1, {"no": 1}, guest=stranger_key),
        respond(api, foreign[1]["sessionId"], 1, {"no": 2}, token=stranger.id_token),
    ]
    upload(world, foreign[0]["sessionId"], "foreign.png", b"\x89PNG", "image/png")
    registered = register(api, user, guest_key, {"displayName": "Ada"})
    assert registered.status_code == 200 and registered.json()["migratedSessions"] == 1
    after = new_session(api, "after", None, token=user.id_token)

    _, document = export(api, token=user.id_token)

    (row,) = rows(db, "SELECT * FROM users WHERE id = :u", u=user.uid)
    assert {k: document[k] for k in ("visitorNumber", "userId", "guestId", "email", "displayName")} == {
        "visitorNumber": row.visitor_number,
        "userId": user.uid,
        "guestId": None,
        "email": user.email,
        "displayName": "Ada",
    }
    assert document["sessions"] == expected_document(db, "s.user_id = :u", u=user.uid)
    assert [s["sessionId"] for s in document["sessions"]] == [
        after["sessionId"],
        own["sessionId"],
        as_guest["sessionId"],
    ]
    assert [r["responseId"] for s in document["sessions"] for r in s["responses"]] == [own_response, guest_response]
    assert [u["name"] for s in document["sessions"] for u in s["uploads"]] == [
        f"sessions/{as_guest['sessionId']}/guest.png"
    ]
    assert document["sessions"][0]["metadata"] == {}  # create_session stores {} for no metadata
    text = json.dumps(document)
    for session, response in zip(foreign, foreign_responses):
        assert session["sessionId"] not in text and response not in text
    assert "stranger" not in text and "foreign.png" not in text and stranger.email not in text

    # The claimed key opens nothing; the strangers see only their own.
    assert_error(api.get("export_my_data", guest=guest_key), 403, "guest_claimed")
    _, theirs = export(api, token=stranger.id_token)
    assert [s["sessionId"] for s in theirs["sessions"]] == [foreign[1]["sessionId"]]
    _, theirs = export(api, guest=stranger_key)
    assert [s["sessionId"] for s in theirs["sessions"]] == [foreign[0]["sessionId"]]
    assert [u["name"] for u in theirs["sessions"][0]["uploads"]] == [f"sessions/{foreign[0]['sessionId']}/foreign.png"]


def test_an_anonymous_account_exports_its_own_sessions(api, db, auth_emulator):
    anonymous = auth_emulator.sign_up(None)
    session = new_session(api, "anon", {"k": 1}, token=anonymous.id_token)
    response_id = respond(api, session["sessionId"], 0, {"a": "b"}, token=anonymous.id_token)

    _, document = export(api, token=anonymous.id_token)

    assert document["userId"] == anonymous.uid and document["guestId"] is None and document["email"] is None
    assert document["visitorNumber"] == session["visitorNumber"]
    assert [(s["sessionId"], [r["responseId"] for r in s["responses"]]) for s in document["sessions"]] == [
        (session["sessionId"], [response_id])
    ]


def test_a_registered_user_without_sessions_gets_an_empty_list(api, db, auth_emulator):
    user = auth_emulator.new_user()
    assert register(api, user).status_code == 201

    _, document = export(api, token=user.id_token)

    assert document == {
        "visitorNumber": 1,
        "userId": user.uid,
        "guestId": None,
        "email": user.email,
        "displayName": None,
        "sessions": [],
    }


def test_refusals_have_the_error_shape(api, db, auth_emulator):
    assert_error(api.get("export_my_data", guest=new_guest_key()), 404, "not_found")
    assert_error(api.get("export_my_data", token=auth_emulator.new_user().id_token), 404, "not_found")
    assert_error(api.get("export_my_data"), 401, "unauthenticated")
    assert_error(api.get("export_my_data", token="not-a-token", guest=new_guest_key()), 401, "unauthenticated")
    assert_error(api.get("export_my_data", guest="too-short"), 400, "invalid_argument")
    refused = api.post("export_my_data", {}, guest=new_guest_key())
    assert_error(refused, 405, "method_not_allowed")
    assert refused.headers["Allow"] == "GET, OPTIONS"
    assert "Content-Disposition" not in refused.headers
    key = new_guest_key()
    api.post("create_session", {}, guest=key)
    assert register(api, auth_emulator.new_user(), key).status_code == 201
    assert_error(api.get("export_my_data", guest=key), 403, "guest_claimed")
    assert scalar(db, "SELECT count(*) FROM sessions") == 1


def test_a_browser_on_an_allowed_origin_may_read_it(api, db):
    key = new_guest_key()
    api.post("create_session", {}, guest=key)

    answer = api.get("export_my_data", guest=key, headers={"Origin": ALLOWED_ORIGIN})
    also = api.get("api/export_my_data", guest=key)  # the Hosting rewrite's path

    assert answer.status_code == 200 and answer.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    assert answer.json() == also.json() and len(answer.json()["sessions"]) == 1
