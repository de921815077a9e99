"""create_session and get_visitor, in process (tests/inprocess/conftest.py): what a
frontend sees, and what is stored."""

import uuid
from datetime import UTC, datetime

from tests.support import assert_error, new_guest_key, rows, scalar


def parse_time(value: str) -> datetime:
    assert value.endswith("Z"), value
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_new_guest_gets_number_one_and_a_stored_session(api, db):
    key = new_guest_key()
    response = api.post("create_session", {"experimentId": "study-1.a_b", "metadata": {"lang": "de"}}, guest=key)

    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"sessionId", "visitorNumber", "userId", "guestId", "experimentId", "createdAt", "condition"}
    assert body["condition"] is None  # an experiment without a configuration (SPEC §14.2)
    assert body["visitorNumber"] == 1
    assert body["userId"] is None
    assert uuid.UUID(body["guestId"])
    assert body["experimentId"] == "study-1.a_b"
    assert abs((parse_time(body["createdAt"]) - datetime.now(UTC)).total_seconds()) < 60

    (session,) = rows(db, "SELECT * FROM sessions")
    assert str(session.id) == body["sessionId"]
    assert session.visitor_number == 1 and session.user_id is None
    assert str(session.guest_id) == body["guestId"]
    assert session.metadata == {"lang": "de"}
    (guest,) = rows(db, "SELECT * FROM guests")
    assert guest.visitor_number == 1 and guest.claimed_by is None
    # The key is never stored: only its SHA-256.
    import hashlib

    assert bytes(guest.key_hash) == hashlib.sha256(key.encode()).digest()
    assert key not in str(rows(db, "SELECT * FROM guests"))


def test_returning_guest_keeps_its_number(api, db):
    key = new_guest_key()
    first = api.post("create_session", guest=key).json()
    api.post("create_session", guest=new_guest_key())  # another visitor in between
    second = api.post("create_session", {"experimentId": "e2"}, guest=key)

    assert second.status_code == 201
    assert second.json()["visitorNumber"] == first["visitorNumber"] == 1
    assert second.json()["guestId"] == first["guestId"]
    assert second.json()["sessionId"] != first["sessionId"]
    assert scalar(db, "SELECT count(*) FROM guests") == 2
    assert [r.visitor_number for r in rows(db, "SELECT visitor_number FROM sessions ORDER BY created_at")] == [1, 2, 1]


def test_registered_user_gets_a_number_and_user_row(api, db, auth_emulator):
    user = auth_emulator.new_user()
    response = api.post("create_session", {}, token=user.id_token)

    assert response.status_code == 201
    body = response.json()
    assert body["userId"] == user.uid and body["guestId"] is None and body["visitorNumber"] == 1
    (row,) = rows(db, "SELECT * FROM users")
    assert (row.id, row.email, row.visitor_number) == (user.uid, user.email, 1)
    again = api.post("create_session", token=user.id_token).json()
    assert again["visitorNumber"] == 1
    assert scalar(db, "SELECT count(*) FROM sessions WHERE user_id = :u AND visitor_number = 1", u=user.uid) == 2


def test_token_wins_over_guest_key(api, db, auth_emulator):
    user = auth_emulator.new_user()
    body = api.post("create_session", token=user.id_token, guest=new_guest_key()).json()
    assert body["userId"] == user.uid and body["guestId"] is None
    assert scalar(db, "SELECT count(*) FROM guests") == 0


def test_retry_with_same_session_id_returns_same_body_and_takes_no_number(api, db):
    key = new_guest_key()
    session_id = str(uuid.uuid4())
    first = api.post("create_session", {"sessionId": session_id, "experimentId": "x"}, guest=key)
    retry = api.post("create_session", {"sessionId": session_id, "experimentId": "x"}, guest=key)

    assert first.status_code == 201 and retry.status_code == 200
    assert retry.json() == first.json()
    assert scalar(db, "SELECT count(*) FROM sessions") == 1
    # The next new visitor gets 2: the retry took no number.
    assert api.post("create_session", guest=new_guest_key()).json()["visitorNumber"] == 2


def test_someone_elses_session_id_is_a_conflict_and_changes_nothing(api, db, auth_emulator):
    session_id = str(uuid.uuid4())
    owner = new_guest_key()
    api.post("create_session", {"sessionId": session_id}, guest=owner)
    before = rows(db, "SELECT id, visitor_number, guest_id FROM sessions")

    assert_error(api.post("create_session", {"sessionId": session_id}, guest=new_guest_key()), 409, "conflict")
    user = auth_emulator.new_user()
    assert_error(api.post("create_session", {"sessionId": session_id}, token=user.id_token), 409, "conflict")

    assert rows(db, "SELECT id, visitor_number, guest_id FROM sessions") == before
    assert scalar(db, "SELECT count(*) FROM guests") == 1
    assert scalar(db, "SELECT count(*) FROM users") == 0


def test_get_visitor_lists_sessions_newest_first(api, db):
    key = new_guest_key()
    first = api.post("create_session", {"experimentId": "a"}, guest=key).json()
    second = api.post("create_session", {"experimentId": "b"}, guest=key).json()
    with db.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO responses (id, session_id, visitor_number, level, data) "
            f"VALUES (gen_random_uuid(), '{first['sessionId']}', 1, 0, '{{}}'), "
            f"(gen_random_uuid(), '{first['sessionId']}', 1, 1, '{{}}')"
        )

    response = api.get("get_visitor", guest=key)

    assert response.status_code == 200
    body = response.json()
    assert body["visitorNumber"] == 1 and body["userId"] is None and body["guestId"] == first["guestId"]
    assert [s["sessionId"] for s in body["sessions"]] == [second["sessionId"], first["sessionId"]]
    assert [s["responseCount"] for s in body["sessions"]] == [0, 2]
    assert body["sessions"][0] == {
        "sessionId": second["sessionId"],
        "experimentId": "b",
        "createdAt": second["createdAt"],
        "condition": None,
        "responseCount": 0,
        "uploads": [],
    }


def test_get_visitor_for_a_user(api, db, auth_emulator):
    user = auth_emulator.new_user()
    session = api.post("create_session", token=user.id_token).json()
    body = api.get("get_visitor", token=user.id_token).json()
    assert body["userId"] == user.uid and body["guestId"] is None and body["visitorNumber"] == 1
    assert [s["sessionId"] for s in body["sessions"]] == [session["sessionId"]]


def test_get_visitor_unknown_visitor_is_not_found_and_creates_nothing(api, db):
    assert_error(api.get("get_visitor", guest=new_guest_key()), 404, "not_found")
    assert scalar(db, "SELECT count(*) FROM guests") == 0


def test_guests_do_not_see_each_others_sessions(api, db):
    mine, theirs = new_guest_key(), new_guest_key()
    api.post("create_session", guest=mine)
    api.post("create_session", guest=theirs)
    assert len(api.get("get_visitor", guest=mine).json()["sessions"]) == 1
