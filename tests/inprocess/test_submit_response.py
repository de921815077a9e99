"""submit_response in process (tests/inprocess/conftest.py):
only the session's owner writes, the response takes
the session's visitor number, retries are safe; and what is stored."""

import uuid

import pytest
from sqlalchemy import event

from shared.visitors import responses
from shared.web.auth import Guest, User, hash_guest_key
from shared.web.models import NewResponse
from tests.support import assert_error, new_guest_key, new_session, rows, scalar

RESPONSE_FIELDS = {"responseId", "sessionId", "visitorNumber", "level", "createdAt"}


def stored_responses(db) -> list:
    return rows(db, "SELECT id, session_id, visitor_number, level, data, created_at FROM responses ORDER BY id")


def test_guest_stores_a_response_in_its_session(api, db):
    key = new_guest_key()
    session = new_session(api, guest=key)

    response = api.post(
        "submit_response",
        {"sessionId": session["sessionId"], "level": 3, "data": {"answer": "blue", "ms": 1234}},
        guest=key,
    )

    assert response.status_code == 201
    body = response.json()
    assert set(body) == RESPONSE_FIELDS
    assert uuid.UUID(body["responseId"])
    assert body["sessionId"] == session["sessionId"]
    assert body["visitorNumber"] == session["visitorNumber"] == 1
    assert body["level"] == 3
    assert body["createdAt"].endswith("Z")
    (row,) = stored_responses(db)
    assert (str(row.id), str(row.session_id), row.visitor_number, row.level) == (
        body["responseId"],
        session["sessionId"],
        1,
        3,
    )
    assert row.data == {"answer": "blue", "ms": 1234}


def test_user_stores_a_response_in_its_session(api, db, auth_emulator):
    user = auth_emulator.new_user()
    session = new_session(api, token=user.id_token)

    response = api.post("submit_response", {"sessionId": session["sessionId"], "data": [1, 2]}, token=user.id_token)

    assert response.status_code == 201
    assert response.json()["visitorNumber"] == 1 and response.json()["level"] is None
    (row,) = stored_responses(db)
    assert row.visitor_number == 1 and row.level is None and row.data == [1, 2]


def test_response_inherits_its_sessions_visitor_number(api, db, auth_emulator):
    first, second = new_guest_key(), new_guest_key()
    new_session(api, guest=first)
    theirs = new_session(api, guest=second)
    user = auth_emulator.new_user()
    mine = new_session(api, token=user.id_token)
    assert (theirs["visitorNumber"], mine["visitorNumber"]) == (2, 3)

    a = api.post("submit_response", {"sessionId": theirs["sessionId"], "data": 1}, guest=second).json()
    b = api.post("submit_response", {"sessionId": mine["sessionId"], "data": 2}, token=user.id_token).json()

    assert (a["visitorNumber"], b["visitorNumber"]) == (2, 3)
    assert scalar(db, "SELECT count(*) FROM responses WHERE visitor_number = 2") == 1
    assert (
        scalar(
            db,
            "SELECT count(*) FROM responses r JOIN sessions s ON s.id = r.session_id "
            "WHERE r.visitor_number IS DISTINCT FROM s.visitor_number",
        )
        == 0
    )


@pytest.mark.parametrize(
    "data",
    [
        {},
        [],
        "text",
        "",
        0,
        -1.5,
        12345678901234567890,
        True,
        False,
        None,
        {"nested": {"list": [1, "two", None, {"three": 3.0}]}, "ünïcødé": "日本語 ✓"},
    ],
)
def test_data_may_be_any_json_value(api, db, data):
    key = new_guest_key()
    session = new_session(api, guest=key)
    response = api.post("submit_response", {"sessionId": session["sessionId"], "data": data}, guest=key)
    assert response.status_code == 201, response.text
    assert scalar(db, "SELECT data FROM responses") == data
    assert scalar(db, "SELECT jsonb_typeof(data) FROM responses") is not None  # JSON null, never SQL NULL


@pytest.mark.parametrize("level", [0, 1, 2**31 - 1])
def test_level_takes_any_postgresql_integer_from_zero(api, db, level):
    key = new_guest_key()
    session = new_session(api, guest=key)
    body = api.post(
        "submit_response", {"sessionId": session["sessionId"], "level": level, "data": {}}, guest=key
    ).json()
    assert body["level"] == level
    assert scalar(db, "SELECT level FROM responses") == level


def test_retry_with_same_response_id_answers_the_same_and_stores_nothing_new(api, db):
    key = new_guest_key()
    session = new_session(api, guest=key)
    response_id = str(uuid.uuid4())
    request = {"sessionId": session["sessionId"], "responseId": response_id, "level": 1, "data": {"a": 1}}

    first = api.post("submit_response", request, guest=key)
    stored = stored_responses(db)
    retry = api.post("submit_response", request, guest=key)
    # A retry is recognised by its id alone: what is stored is what came first.
    changed = api.post("submit_response", {**request, "level": 9, "data": "other"}, guest=key)

    assert first.status_code == 201 and retry.status_code == 200 and changed.status_code == 200
    assert first.json()["responseId"] == response_id
    assert retry.json() == first.json() == changed.json()
    assert stored_responses(db) == stored
    assert len(stored) == 1 and stored[0].level == 1 and stored[0].data == {"a": 1}


def test_response_id_used_in_another_session_is_a_conflict(api, db):
    key, other = new_guest_key(), new_guest_key()
    first, second = new_session(api, guest=key), new_session(api, guest=key)
    elsewhere = new_session(api, guest=other)
    response_id = str(uuid.uuid4())
    api.post("submit_response", {"sessionId": first["sessionId"], "responseId": response_id, "data": 1}, guest=key)
    before = stored_responses(db)

    # The same owner's other session, and another visitor's own session: both refused.
    assert_error(
        api.post(
            "submit_response", {"sessionId": second["sessionId"], "responseId": response_id, "data": 2}, guest=key
        ),
        409,
        "conflict",
    )
    assert_error(
        api.post(
            "submit_response", {"sessionId": elsewhere["sessionId"], "responseId": response_id, "data": 3}, guest=other
        ),
        409,
        "conflict",
    )

    assert stored_responses(db) == before


def test_someone_elses_session_is_permission_denied(api, db, auth_emulator):
    owner, stranger = new_guest_key(), new_guest_key()
    guest_session = new_session(api, guest=owner)
    new_session(api, guest=stranger)
    user, other_user = auth_emulator.new_user(), auth_emulator.new_user()
    user_session = new_session(api, token=user.id_token)
    new_session(api, token=other_user.id_token)

    attempts = [
        (guest_session, {"guest": stranger}),
        (guest_session, {"token": user.id_token}),  # a user never writes into a guest's session
        (user_session, {"token": other_user.id_token}),
        (user_session, {"guest": owner}),
        (user_session, {"guest": new_guest_key()}),  # a key never seen before
    ]
    for session, credentials in attempts:
        response = api.post("submit_response", {"sessionId": session["sessionId"], "data": {}}, **credentials)
        assert_error(response, 403, "permission_denied")

    assert scalar(db, "SELECT count(*) FROM responses") == 0
    assert scalar(db, "SELECT count(*) FROM guests") == 2  # submit_response never creates a visitor


def test_unknown_session_is_not_found(api, db, auth_emulator):
    key = new_guest_key()
    new_session(api, guest=key)
    user = auth_emulator.new_user()
    for credentials in ({"guest": key}, {"guest": new_guest_key()}, {"token": user.id_token}):
        response = api.post("submit_response", {"sessionId": str(uuid.uuid4()), "data": {}}, **credentials)
        assert_error(response, 404, "not_found")
    assert scalar(db, "SELECT count(*) FROM responses") == 0
    assert scalar(db, "SELECT count(*) FROM guests") == 1
    assert scalar(db, "SELECT count(*) FROM users") == 0


def test_data_limit_is_64_kib_of_utf8_json(api, db):
    key = new_guest_key()
    session = new_session(api, guest=key)
    # A JSON string is its characters and two quotes; "é" is two bytes in UTF-8.
    at_limit = "é" * (64 * 1024 // 2 - 1)
    over_limit = at_limit + "x"

    accepted = api.post("submit_response", {"sessionId": session["sessionId"], "data": at_limit}, guest=key)
    refused = api.post("submit_response", {"sessionId": session["sessionId"], "data": over_limit}, guest=key)

    assert accepted.status_code == 201
    error = assert_error(refused, 400, "invalid_argument")
    assert "data" in error["message"] and "65536" in error["message"]
    assert scalar(db, "SELECT count(*) FROM responses") == 1


SESSION = "3f0c8a4e-5b7d-4c1e-9a2b-6d8e0f1a2b3c"


@pytest.mark.parametrize(
    "body, field",
    [
        ({"sessionId": SESSION, "level": "1", "data": {}}, "level"),
        ({"sessionId": SESSION, "level": 1.5, "data": {}}, "level"),
        ({"sessionId": SESSION, "level": 1.0, "data": {}}, "level"),
        ({"sessionId": SESSION, "level": True, "data": {}}, "level"),
        ({"sessionId": SESSION, "level": -1, "data": {}}, "level"),
        ({"sessionId": SESSION, "level": 2**31, "data": {}}, "level"),
        ({"sessionId": SESSION, "level": 10**30, "data": {}}, "level"),
        ({"sessionId": SESSION, "level": [1], "data": {}}, "level"),
        ({"sessionId": SESSION}, "data"),
        ({"data": {}}, "sessionId"),
        ({"sessionId": None, "data": {}}, "sessionId"),
        ({"sessionId": "not-a-uuid", "data": {}}, "sessionId"),
        ({"sessionId": 12, "data": {}}, "sessionId"),
        ({"sessionId": SESSION, "responseId": "nope", "data": {}}, "responseId"),
        ({"sessionId": SESSION, "responseId": 5, "data": {}}, "responseId"),
        ({"sessionId": SESSION, "data": {}, "score": 3}, "score"),
    ],
)
def test_wrong_types_and_values_are_refused_before_anything_is_read(api, db, body, field):
    key = new_guest_key()
    session = new_session(api, guest=key)
    if body.get("sessionId") == SESSION:
        body = {**body, "sessionId": session["sessionId"]}  # a real session: the body alone is wrong
    error = assert_error(api.post("submit_response", body, guest=key), 400, "invalid_argument")
    assert field in error["message"]
    assert scalar(db, "SELECT count(*) FROM responses") == 0


@pytest.mark.parametrize(
    "raw",
    [
        b'{"sessionId": "%s", "data": 1e999}',
        b'{"sessionId": "%s", "data": [-1e400]}',
        b'{"sessionId": "%s", "data": {}, "level": 1e999}',
    ],
)
def test_numbers_out_of_range_are_refused(api, db, raw):
    key = new_guest_key()
    session = new_session(api, guest=key)
    response = api.post(
        "submit_response",
        data=raw % session["sessionId"].encode(),
        guest=key,
        headers={"Content-Type": "application/json"},
    )
    assert_error(response, 400, "invalid_argument")
    assert scalar(db, "SELECT count(*) FROM responses") == 0


def test_credentials_are_required_and_checked(api, db, auth_emulator):
    key = new_guest_key()
    session = new_session(api, guest=key)
    body = {"sessionId": session["sessionId"], "data": {}}
    user = auth_emulator.new_user()
    forged = auth_emulator.crafted_token(
        user.uid, aud="someone-elses-project", iss="https://securetoken.google.com/someone-elses-project"
    )

    assert_error(api.post("submit_response", body), 401, "unauthenticated")
    # A bad token beside the owner's guest key is refused, never downgraded to the guest.
    assert_error(api.post("submit_response", body, guest=key, token=forged), 401, "unauthenticated")
    assert_error(api.post("submit_response", body, guest="too-short"), 400, "invalid_argument")
    assert scalar(db, "SELECT count(*) FROM responses") == 0


def test_get_is_not_allowed(api, db):
    response = api.get("submit_response", guest=new_guest_key())
    assert_error(response, 405, "method_not_allowed")
    assert response.headers["Allow"] == "POST, OPTIONS"


def test_get_visitor_counts_submitted_responses(api, db):
    key = new_guest_key()
    session = new_session(api, guest=key)
    for level in range(3):
        api.post("submit_response", {"sessionId": session["sessionId"], "level": level, "data": {}}, guest=key)
    (listed,) = api.get("get_visitor", guest=key).json()["sessions"]
    assert listed["responseCount"] == 3


def test_submitting_is_one_sql_statement(api, db, auth_emulator):
    """The hot path: one statement per submission (new, retry, refused), through the domain function."""
    key = new_guest_key()
    guest_session = new_session(api, guest=key)
    user = auth_emulator.new_user()
    user_session = new_session(api, token=user.id_token)
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args):
        statements.append(statement)

    guest, registered = Guest(hash_guest_key(key)), User(user.uid, user.email, "password")
    response_id = uuid.uuid4()
    event.listen(db, "before_cursor_execute", count)
    try:
        calls = [
            (guest, NewResponse(sessionId=uuid.UUID(guest_session["sessionId"]), responseId=response_id, data=1)),
            (guest, NewResponse(sessionId=uuid.UUID(guest_session["sessionId"]), responseId=response_id, data=1)),
            (registered, NewResponse(sessionId=uuid.UUID(user_session["sessionId"]), data=2)),
        ]
        for caller, request in calls:
            before = len(statements)
            responses.submit_response(db, caller, request)
            assert len(statements) - before == 1
        before = len(statements)
        with pytest.raises(responses.PermissionDenied):
            responses.submit_response(db, registered, calls[0][1])
        assert len(statements) - before == 1
    finally:
        event.remove(db, "before_cursor_execute", count)
    assert scalar(db, "SELECT count(*) FROM responses") == 2
