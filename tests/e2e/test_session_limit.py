"""The session limit (SPEC §12; sql/008_session_limit.sql): at most SESSION_LIMIT_PER_HOUR new
sessions per visitor per rolling hour, exact across instances, refused with nothing written.

Each test serves the functions itself with a low limit (the session's stack has the default)."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from devtools.ports import free_port
from devtools.stack import FunctionsServer
from tests.support import Api, assert_error, new_guest_key, rows, scalar

LIMIT = 20


@pytest.fixture
def limited_servers(stack, db, tmp_path):
    """start(limit, count): `count` functions servers (separate processes) sharing the stack's database."""
    started: list[FunctionsServer] = []

    def start(limit: int = LIMIT, count: int = 1) -> list[Api]:
        env = {**stack.env(), "SESSION_LIMIT_PER_HOUR": str(limit)}
        for n in range(count):
            started.append(FunctionsServer(free_port(), env, tmp_path / f"functions-{n}.log", threads=16).start())
        return [Api(server.url) for server in started[-count:]]

    yield start
    for server in started:
        server.stop()


def sequence_position(db) -> int:
    last_value, called = rows(db, "SELECT last_value, is_called FROM visitor_number_seq")[0]
    return last_value if called else last_value - 1


def test_32_concurrent_sessions_of_one_visitor_give_exactly_the_limit(limited_servers, db):
    """Two server processes, 32 create_session of one new guest at once: exactly 20 sessions
    and 12 answers 429 with Retry-After; one guest, one number, no other row."""
    first, second = limited_servers(LIMIT, count=2)
    key = new_guest_key()

    with ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(lambda n: (first, second)[n % 2].post("create_session", {}, guest=key), range(32)))

    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201] * 20 + [429] * 12, [a.text for a in answers if a.status_code not in (201, 429)]
    for refused in (a for a in answers if a.status_code == 429):
        error = assert_error(refused, 429, "resource_exhausted")
        assert "sessions" in error["message"]
        assert 3500 <= int(refused.headers["Retry-After"]) <= 3600
    assert scalar(db, "SELECT count(*) FROM sessions") == 20
    assert scalar(db, "SELECT count(*) FROM guests") == 1
    # One number for the 20. (Requests that lost the race to create the new guest may have taken a
    # number each before finding it made - create_session's INSERT ... ON CONFLICT, as before this limit.)
    assert len({a.json()["visitorNumber"] for a in answers if a.status_code == 201}) == 1
    assert scalar(db, "SELECT cardinality(session_times) FROM guests") == 20

    # At the limit, 16 more at once: all refused, and a refusal takes no number and writes nothing.
    position = sequence_position(db)
    with ThreadPoolExecutor(16) as pool:
        more = list(pool.map(lambda n: (first, second)[n % 2].post("create_session", {}, guest=key), range(16)))
    assert [a.status_code for a in more] == [429] * 16
    assert sequence_position(db) == position
    assert scalar(db, "SELECT count(*) FROM sessions") == 20
    assert scalar(db, "SELECT cardinality(session_times) FROM guests") == 20


def test_retry_after_is_when_the_oldest_session_leaves_the_hour_and_a_retry_still_answers(limited_servers, db):
    (api,) = limited_servers(3)
    key = new_guest_key()
    made = [api.post("create_session", {"sessionId": str(uuid.uuid4())}, guest=key) for _ in range(3)]
    assert [a.status_code for a in made] == [201] * 3
    # The oldest of the three made 40 minutes ago: it leaves the rolling hour in 20.
    with db.begin() as conn:
        conn.exec_driver_sql("UPDATE guests SET session_times[1] = session_times[1] - interval '40 minutes'")

    refused = api.post("create_session", {}, guest=key)

    assert_error(refused, 429, "resource_exhausted")
    assert 1190 <= int(refused.headers["Retry-After"]) <= 1200
    # A retry of an existing session at the limit: 200, the same session, nothing counted.
    again = api.post("create_session", {"sessionId": made[0].json()["sessionId"]}, guest=key)
    assert (again.status_code, again.json()) == (200, made[0].json())
    assert scalar(db, "SELECT count(*) FROM sessions") == 3
    assert scalar(db, "SELECT cardinality(session_times) FROM guests") == 3
    # Once a session is over an hour old, one more is let through, and the window forgets it.
    with db.begin() as conn:
        conn.exec_driver_sql("UPDATE guests SET session_times[1] = now() - interval '61 minutes'")
    assert api.post("create_session", {}, guest=key).status_code == 201
    assert scalar(db, "SELECT cardinality(session_times) FROM guests") == 3


def test_a_signed_in_user_is_limited_too(limited_servers, db, auth_emulator):
    (api,) = limited_servers(2)
    user = auth_emulator.new_user()
    assert [api.post("create_session", {}, token=user.id_token).status_code for _ in range(3)] == [201, 201, 429]
    assert scalar(db, "SELECT count(*) FROM sessions") == 2
    # Another visitor is not: the limit is per visitor.
    assert api.post("create_session", {}, guest=new_guest_key()).status_code == 201


def test_the_limit_is_off_with_0(limited_servers, db):
    (api,) = limited_servers(0)
    key = new_guest_key()
    assert {api.post("create_session", {}, guest=key).status_code for _ in range(25)} == {201}
    assert scalar(db, "SELECT count(*) FROM sessions") == 25
    assert scalar(db, "SELECT cardinality(session_times) FROM guests") == 0  # nothing counted, nothing written
