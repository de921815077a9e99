"""A slow database: the test holds a table lock in its own connection, so the
functions' statements wait behind it. They give up at the configured statement
timeout (DB_STATEMENT_TIMEOUT_MS) and answer 503 with Retry-After in about that
time, the instance keeps serving what does not wait, nothing is half-written,
and once the lock is released the same requests succeed. And a database that
answers nothing at all: 503 a few seconds later, not a request that hangs."""

from __future__ import annotations

import contextlib
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import text

from devtools.clients import StorageEvents
from devtools.ports import wait_until
from shared.core.db import SOCKET_TIMEOUT_MARGIN_SECONDS
from shared.web.auth import hash_guest_key
from tests.faults.conftest import database_reader
from tests.support import Api, assert_error, new_guest_key, rows, scalar
from tests.uploads_support import UploadsWorld

TIMEOUT_MS = 1000
TIMEOUT = TIMEOUT_MS / 1000
# Above the timeout: the time to answer on a machine shared with other work.
SLACK = 2.0
WAITING = 6  # requests at once behind the lock: fewer than one instance's pool (DB_POOL_SIZE + DB_MAX_OVERFLOW)


@pytest.fixture
def slow_api(stack, db, functions_server) -> Api:
    """The functions with a short statement timeout, on the session stack's (emptied) database."""
    server = functions_server({**stack.env(), "DB_STATEMENT_TIMEOUT_MS": str(TIMEOUT_MS)}, workers=1, threads=16)
    return Api(server.url)


@contextlib.contextmanager
def table_lock(engine, statement: str):
    """Hold a lock in a transaction of the test's own connection, until the block ends."""
    with engine.connect() as conn:
        transaction = conn.begin()
        try:
            conn.execute(text(statement))
            yield
        finally:
            transaction.rollback()


def waiting_for_locks(engine) -> int:
    return scalar(engine, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")


def timed(call):
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def assert_timed_out(response: requests.Response, took: float):
    assert_error(response, 503, "unavailable")
    assert int(response.headers["Retry-After"]) > 0
    assert "statement timeout" not in response.text and "canceling" not in response.text
    # It waited for the lock until the timeout, not less, and answered soon after it.
    assert TIMEOUT * 0.9 <= took < TIMEOUT + SLACK, f"answered after {took:.2f} s"


def assert_logged_timeout(functions_server_log):
    assert "57014: canceling statement due to statement timeout" in functions_server_log.read_text()


@pytest.mark.slow
def test_create_session_behind_a_lock_answers_503_at_the_statement_timeout(slow_api, db, tmp_path):
    known = new_guest_key()
    first = slow_api.post("create_session", guest=known)
    assert first.status_code == 201
    keys = [new_guest_key() for _ in range(WAITING)]

    # SHARE blocks every INSERT into sessions and lets reads through.
    with table_lock(db, "LOCK TABLE sessions IN SHARE MODE"):
        with ThreadPoolExecutor(WAITING + 1) as pool:
            # One client each (a requests.Session is not for sharing between threads).
            waiting = [
                pool.submit(timed, lambda k=k: Api(slow_api.base_url).post("create_session", guest=k)) for k in keys
            ]
            wait_until(lambda: waiting_for_locks(db) > 0, "a request to wait behind the lock", timeout=TIMEOUT)
            # Meanwhile the instance still answers what does not wait for the lock.
            visitor, read_took = timed(lambda: slow_api.get("get_visitor", guest=known))
            answers = [future.result() for future in waiting]
        assert visitor.status_code == 200 and visitor.json()["visitorNumber"] == 1
        assert read_took < TIMEOUT, f"a read waited {read_took:.2f} s behind requests stuck on the lock"
        for response, took in answers:
            assert_timed_out(response, took)
        assert scalar(db, "SELECT count(*) FROM guests") == 1  # nothing of the refused requests

    # The lock is gone: the same visitors try again and are served at once.
    again = [timed(lambda k=k: slow_api.post("create_session", guest=k)) for k in keys]
    assert [response.status_code for response, _ in again] == [201] * WAITING
    assert all(took < TIMEOUT for _, took in again)
    stored = rows(
        db,
        "SELECT g.key_hash, g.visitor_number, count(s.id) AS sessions "
        "FROM guests g JOIN sessions s ON s.guest_id = g.id GROUP BY g.id",
    )
    assert {(r.key_hash, r.visitor_number, r.sessions) for r in stored} == (
        {(hash_guest_key(known), 1, 1)}
        | {(hash_guest_key(k), response.json()["visitorNumber"], 1) for k, (response, _) in zip(keys, again)}
    )
    assert_logged_timeout(tmp_path / "functions.log")
    print(
        f"\nbehind the lock: {WAITING} x 503 in {min(t for _, t in answers):.2f}-{max(t for _, t in answers):.2f} s "
        f"(statement timeout {TIMEOUT:.1f} s), a read meanwhile {read_took:.2f} s; "
        f"after it: {WAITING} x 201 in at most {max(t for _, t in again):.2f} s"
    )


@pytest.mark.slow
def test_register_waiting_at_its_last_statement_answers_503_and_claims_nothing(slow_api, db, auth_emulator, tmp_path):
    key = new_guest_key()
    session = slow_api.post("create_session", {"experimentId": "e"}, guest=key).json()
    assert (
        slow_api.post("submit_response", {"sessionId": session["sessionId"], "data": {"a": 1}}, guest=key).status_code
        == 201
    )
    user = auth_emulator.new_user()
    before = {
        table: rows(db, f"SELECT * FROM {table} ORDER BY 1")
        for table in ("users", "guests", "sessions", "responses", "visitor_merges")
    }

    # register writes the user, claims the guest and moves its sessions, then renumbers
    # the responses: that last statement waits behind the lock and times out.
    with table_lock(db, "LOCK TABLE responses IN SHARE MODE"):
        response, took = timed(lambda: slow_api.post("register", {}, guest=key, token=user.id_token))
        assert_timed_out(response, took)
    after = {table: rows(db, f"SELECT * FROM {table} ORDER BY 1") for table in before}
    assert after == before  # no user, no claim, no moved session: all of it rolled back

    response = slow_api.post("register", {}, guest=key, token=user.id_token)
    assert response.status_code == 201, response.text
    assert (response.json()["migratedSessions"], response.json()["user"]["visitorNumber"]) == (
        1,
        session["visitorNumber"],
    )
    (moved,) = rows(db, "SELECT user_id FROM sessions")
    assert moved.user_id == user.uid
    assert_logged_timeout(tmp_path / "functions.log")


@pytest.mark.slow
def test_upload_event_behind_a_lock_fails_at_the_timeout_and_its_redelivery_records_it(
    slow_api, api, db, firestore, bucket
):
    world = UploadsWorld(api, db, firestore, bucket, StorageEvents(slow_api.url("on_upload_finalized")))
    session = world.new_session()
    item = world.upload(session["sessionId"])

    # ACCESS EXCLUSIVE blocks even the trigger's read of the session.
    with table_lock(db, "LOCK TABLE sessions IN ACCESS EXCLUSIVE MODE"):
        response, took = timed(lambda: world.deliver(item))
        assert response.status_code >= 500  # redelivered
        assert TIMEOUT * 0.9 <= took < TIMEOUT + SLACK, f"answered after {took:.2f} s"
    assert world.uploads() == {} and set(world.stored(item["name"])["metadata"]) == {"uploadTicket"}  # not tagged

    assert world.deliver(item).ok  # the redelivery, once the lock is gone
    assert world.deliver(item).ok  # and a duplicate of it
    (upload,) = world.uploads().values()
    assert upload["sessionId"] == session["sessionId"]
    assert world.visitors()["1"]["uploadCount"] == 1
    assert world.stored(item["name"])["metadata"]["visitorNumber"] == "1"


@pytest.mark.slow
def test_frozen_database_answers_503_within_the_socket_timeout_and_recovers(stack, own_postgres, functions_server):
    """A database that answers nothing at all (every PostgreSQL process stopped with SIGSTOP,
    as a hung host or a network that drops packets): the statement timeout cannot fire, so
    the client's socket timeout ends the wait, a few seconds after it.

    A 503 after a timeout cannot say whether the write happened: the request may already sit
    in the server's socket buffer, and the server runs it when it thaws. That is what the
    sessionId is for (SPEC §4, safe retries): the retries below send the same one, and each
    visitor ends with exactly the one session it asked for, whichever way the first try went."""
    postgres = own_postgres()
    server = functions_server(
        {**stack.env(), "DATABASE_URL": postgres.url, "DB_STATEMENT_TIMEOUT_MS": str(TIMEOUT_MS)}, workers=1, threads=16
    )
    slow_api = Api(server.url)
    assert slow_api.post("create_session", guest=new_guest_key()).status_code == 201
    tries = [(new_guest_key(), {"sessionId": str(uuid.uuid4())}) for _ in range(WAITING)]
    bound = TIMEOUT + SOCKET_TIMEOUT_MARGIN_SECONDS + SLACK

    postgres.pause()
    try:
        with ThreadPoolExecutor(WAITING) as pool:  # a pooled connection, and new ones to a server that never answers
            answers = list(
                pool.map(
                    lambda attempt: timed(lambda: Api(server.url).post("create_session", attempt[1], guest=attempt[0])),
                    tries,
                )
            )
    finally:
        postgres.resume()
    for response, took in answers:
        assert_error(response, 503, "unavailable")
        assert int(response.headers["Retry-After"]) > 0
        assert took < bound, f"answered after {took:.2f} s"

    probe = new_guest_key()
    wait_until(
        lambda: slow_api.post("create_session", guest=probe).status_code in (200, 201),
        "create_session after the database thawed",
        timeout=30,
    )
    again = [slow_api.post("create_session", body, guest=key) for key, body in tries]
    assert {response.status_code for response in again} <= {200, 201}, [r.text for r in again]
    assert [response.json()["sessionId"] for response in again] == [body["sessionId"] for _, body in tries]
    numbers = [response.json()["visitorNumber"] for response in again]
    assert len(set(numbers)) == WAITING
    engine = database_reader(postgres.url)
    try:
        # The first session, the probe's and one per retried sessionId: none twice.
        counts = rows(
            engine, "SELECT (SELECT count(*) FROM guests) AS guests, (SELECT count(*) FROM sessions) AS sessions"
        )
        assert tuple(counts[0]) == (2 + WAITING, 2 + WAITING)
    finally:
        engine.dispose()
    print(
        f"\nfrozen database: {WAITING} x 503 in {min(t for _, t in answers):.1f}-{max(t for _, t in answers):.1f} s "
        f"(statement timeout {TIMEOUT:.1f} s + {SOCKET_TIMEOUT_MARGIN_SECONDS} s); "
        f"{sum(r.status_code == 200 for r in again)} of the retries found their session made after the thaw"
    )
