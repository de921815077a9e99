"""Races through the real server (gunicorn, threads): requests that arrive together
for one visitor leave exactly one result and nothing behind. The rules of each
function, one request at a time, are tested in process (tests/inprocess/)."""

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import text

from tests.support import (
    assert_error,
    guest_row,
    guest_with_sessions,
    new_guest_key,
    new_session,
    register,
    rows,
    scalar,
)


def test_simultaneous_retries_store_one_response(api, db):
    key = new_guest_key()
    session = new_session(api, guest=key)
    request = {"sessionId": session["sessionId"], "responseId": str(uuid.uuid4()), "data": {"x": 1}}
    senders = 8
    barrier = threading.Barrier(senders)
    answers: list[requests.Response] = []

    def send():
        http = requests.Session()  # one connection each, so that they really are simultaneous
        barrier.wait()
        answers.append(http.post(api.url("submit_response"), json=request, headers={"X-Guest-Key": key}, timeout=30))

    threads = [threading.Thread(target=send) for _ in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(a.status_code for a in answers) == [200] * (senders - 1) + [201]
    assert len({a.text for a in answers}) == 1
    assert scalar(db, "SELECT count(*) FROM responses") == 1


# --- concurrency ---------------------------------------------------------------------------------


def wait_for_lock_waiters(db, count: int, timeout: float = 10.0) -> None:
    """Until `count` database sessions wait for a lock (a readiness check, not a guess)."""
    deadline = time.monotonic() + timeout
    while True:
        waiting = scalar(
            db, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        if waiting >= count:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{waiting} of {count} expected requests are waiting for a lock")
        time.sleep(0.005)


def test_create_session_in_flight_when_register_starts_is_moved(api, db, auth_emulator):
    """create_session holds the guest (FOR SHARE) until it commits; register waits, then moves its session."""
    key = new_guest_key()
    guest_with_sessions(api, key, sessions=1, responses_each=0)
    user = auth_emulator.new_user()
    in_flight_id = str(uuid.uuid4())
    with ThreadPoolExecutor(2) as pool, db.connect() as blocker:
        # An uncommitted row with the session id that create_session will use: create_session
        # takes its lock on the guest, then waits for this transaction to end.
        blocker.execute(text("INSERT INTO sessions (id) VALUES (:id)"), {"id": in_flight_id})
        creating = pool.submit(api.post, "create_session", {"sessionId": in_flight_id}, guest=key)
        wait_for_lock_waiters(db, 1)
        registering = pool.submit(register, api, user, key)
        wait_for_lock_waiters(db, 2)  # register waits for the guest lock
        blocker.rollback()
        created, registered = creating.result(), registering.result()

    assert created.status_code == 201
    assert registered.status_code == 201 and registered.json()["migratedSessions"] == 2
    assert rows(db, "SELECT user_id FROM sessions WHERE id = :id", id=in_flight_id) == [(user.uid,)]
    assert scalar(db, "SELECT count(*) FROM sessions WHERE user_id IS NULL") == 0


def test_create_session_after_the_claim_began_is_refused(api, db, auth_emulator):
    """register holds the guest (FOR UPDATE) until it commits; create_session waits, then sees the claim."""
    key = new_guest_key()
    (session,) = guest_with_sessions(api, key, sessions=1, responses_each=0)
    user = auth_emulator.new_user()
    with ThreadPoolExecutor(2) as pool, db.connect() as blocker:
        # A lock on the guest's session (as a submit_response in flight holds): register takes
        # the guest, then waits here before it moves the sessions.
        blocker.execute(text("SELECT 1 FROM sessions WHERE id = :id FOR SHARE"), {"id": session["sessionId"]})
        registering = pool.submit(register, api, user, key)
        wait_for_lock_waiters(db, 1)
        creating = pool.submit(api.post, "create_session", {}, guest=key)
        wait_for_lock_waiters(db, 2)  # create_session waits for the guest
        blocker.rollback()
        registered, created = registering.result(), creating.result()

    assert registered.status_code == 201 and registered.json()["migratedSessions"] == 1
    assert_error(created, 403, "guest_claimed")
    assert scalar(db, "SELECT count(*) FROM sessions") == 1


def test_response_submitted_during_a_merge_takes_the_users_number(api, db, auth_emulator):
    """submit_response holds its session (FOR SHARE); register waits for it, then renumbers its response."""
    key = new_guest_key()
    (session,) = guest_with_sessions(api, key, sessions=1, responses_each=0)  # guest: 1
    user = auth_emulator.new_user()
    api.post("create_session", {}, token=user.id_token)  # user: 2
    response_id = str(uuid.uuid4())
    with ThreadPoolExecutor(2) as pool, db.connect() as blocker:
        # An uncommitted response with the id submit_response will use: it locks the session,
        # then waits for this transaction to end.
        blocker.execute(
            text("INSERT INTO responses (id, session_id, data) VALUES (:id, :s, '{}')"),
            {"id": response_id, "s": session["sessionId"]},
        )
        submitting = pool.submit(
            api.post,
            "submit_response",
            {"sessionId": session["sessionId"], "responseId": response_id, "data": "late"},
            guest=key,
        )
        wait_for_lock_waiters(db, 1)
        registering = pool.submit(register, api, user, key)
        wait_for_lock_waiters(db, 2)  # register waits for the session
        blocker.rollback()
        submitted, registered = submitting.result(), registering.result()

    assert submitted.status_code == 201 and submitted.json()["visitorNumber"] == 1  # the number it was stored with
    assert registered.json()["mergedFromVisitorNumber"] == 1
    assert rows(db, "SELECT visitor_number, data FROM responses WHERE id = :id", id=response_id) == [(2, "late")]


def test_response_submitted_while_a_merge_commits_waits_and_takes_the_new_number(api, db, auth_emulator):
    key = new_guest_key()
    (session,) = guest_with_sessions(api, key, sessions=1, responses_each=1)  # guest: 1
    user = auth_emulator.new_user()
    api.post("create_session", {}, token=user.id_token)  # user: 2
    with ThreadPoolExecutor(3) as pool, db.connect() as blocker:
        # A lock on the guest's response: register moves the session, then waits here.
        blocker.execute(text("SELECT 1 FROM responses FOR UPDATE"))
        registering = pool.submit(register, api, user, key)
        wait_for_lock_waiters(db, 1)
        by_user = pool.submit(
            api.post, "submit_response", {"sessionId": session["sessionId"], "data": "u"}, token=user.id_token
        )
        by_guest = pool.submit(api.post, "submit_response", {"sessionId": session["sessionId"], "data": "g"}, guest=key)
        wait_for_lock_waiters(db, 3)  # both wait for the session register has moved
        blocker.rollback()
        registered, user_answer, guest_answer = registering.result(), by_user.result(), by_guest.result()

    assert registered.status_code == 200
    assert user_answer.status_code == 201 and user_answer.json()["visitorNumber"] == 2
    assert_error(guest_answer, 403, "permission_denied")
    assert rows(db, "SELECT DISTINCT visitor_number FROM responses") == [(2,)]
    assert scalar(db, "SELECT count(*) FROM responses") == 2


def test_two_users_claiming_one_guest_at_once_one_wins(api, db, auth_emulator):
    key = new_guest_key()
    guest_with_sessions(api, key, sessions=2, responses_each=1)
    users = [auth_emulator.new_user() for _ in range(4)]
    barrier = threading.Barrier(len(users))

    def claim(user):
        http = requests.Session()
        barrier.wait()
        return http.post(
            api.url("register"),
            json={},
            timeout=30,
            headers={"Authorization": f"Bearer {user.id_token}", "X-Guest-Key": key},
        )

    with ThreadPoolExecutor(len(users)) as pool:
        answers = list(pool.map(claim, users))

    assert sorted(a.status_code for a in answers) == [201, 409, 409, 409]
    (winner,) = [u for u, a in zip(users, answers) if a.status_code == 201]
    assert guest_row(db, key).claimed_by == winner.uid
    assert rows(db, "SELECT DISTINCT user_id FROM sessions") == [(winner.uid,)]
    assert rows(db, "SELECT id FROM users") == [(winner.uid,)]  # the losers' upserts were rolled back


@pytest.mark.slow
def test_create_session_racing_register_leaves_no_session_behind(api, db, auth_emulator):
    """50 rounds: two create_session calls for a guest sent at the same moment as register for it."""
    creators = 2
    http = [requests.Session() for _ in range(creators + 1)]  # kept-alive connections, one per sender
    outcomes = {"created": 0, "refused": 0}
    for round_number in range(50):
        key = new_guest_key()
        first = api.post("create_session", {}, guest=key).json()
        user = auth_emulator.new_user()
        if round_number % 2:  # half the rounds merge into a user who already has a number
            api.post("create_session", {}, token=user.id_token)
        barrier = threading.Barrier(creators + 1)

        def create(client):
            barrier.wait()
            return client.post(api.url("create_session"), json={}, headers={"X-Guest-Key": key}, timeout=30)

        def claim(client):
            barrier.wait()
            return client.post(
                api.url("register"),
                json={},
                timeout=30,
                headers={"Authorization": f"Bearer {user.id_token}", "X-Guest-Key": key},
            )

        with ThreadPoolExecutor(creators + 1) as pool:
            creates = [pool.submit(create, client) for client in http[:creators]]
            registering = pool.submit(claim, http[creators])
            created, registered = [f.result() for f in creates], registering.result()

        assert registered.status_code in (200, 201), registered.text
        guest = guest_row(db, key)
        assert guest.claimed_by == user.uid
        user_number = registered.json()["user"]["visitorNumber"]
        for answer in created:
            if answer.status_code == 201:
                outcomes["created"] += 1
                session_id = answer.json()["sessionId"]
                assert rows(db, "SELECT user_id, visitor_number FROM sessions WHERE id = :id", id=session_id) == [
                    (user.uid, user_number)
                ], f"round {round_number}"
            else:
                outcomes["refused"] += 1
                assert_error(answer, 403, "guest_claimed")
        assert scalar(db, "SELECT count(*) FROM sessions WHERE guest_id = :g AND user_id IS NULL", g=guest.id) == 0, (
            f"round {round_number}: a session was left with the claimed guest"
        )
        guest_sessions = scalar(db, "SELECT count(*) FROM sessions WHERE guest_id = :g", g=guest.id)
        assert registered.json()["migratedSessions"] == guest_sessions
        assert guest_sessions == 1 + sum(a.status_code == 201 for a in created)
        assert first["sessionId"] in {
            str(r.id) for r in rows(db, "SELECT id FROM sessions WHERE user_id = :u", u=user.uid)
        }
    print(f"race outcomes over 50 rounds: {outcomes}")


@pytest.mark.slow
def test_first_create_session_racing_register_of_a_never_seen_key_leaves_no_session_behind(api, db, auth_emulator):
    """SPEC §13, 50 rounds: register names a key that has no session yet while the key's
    first create_session runs. Either the session lands first and register moves it, or
    register records the key as claimed first and the session is refused."""
    http = [requests.Session(), requests.Session()]
    orders = {"moved": 0, "refused": 0}
    for _ in range(50):
        key = new_guest_key()
        user = auth_emulator.new_user()
        barrier = threading.Barrier(2)

        def create():
            barrier.wait()
            return http[0].post(api.url("create_session"), json={}, headers={"X-Guest-Key": key}, timeout=30)

        def claim():
            barrier.wait()
            return http[1].post(
                api.url("register"),
                json={},
                timeout=30,
                headers={"Authorization": f"Bearer {user.id_token}", "X-Guest-Key": key},
            )

        with ThreadPoolExecutor(2) as pool:
            created, registered = pool.submit(create), pool.submit(claim)
            created, registered = created.result(), registered.result()

        assert registered.status_code == 201, registered.text
        assert guest_row(db, key).claimed_by == user.uid
        if created.status_code == 201:
            orders["moved"] += 1
            assert registered.json()["migratedSessions"] == 1
            assert rows(db, "SELECT user_id FROM sessions WHERE id = :s", s=created.json()["sessionId"]) == [
                (user.uid,)
            ]
        else:
            orders["refused"] += 1
            assert_error(created, 403, "guest_claimed")
            assert registered.json()["migratedSessions"] == 0
        assert scalar(db, "SELECT count(*) FROM sessions WHERE user_id IS NULL") == 0
    assert sum(orders.values()) == 50


def test_create_session_meeting_an_uncommitted_record_of_its_key_waits_and_is_refused(api, db, auth_emulator):
    """The other order of the race above, made certain: register's record of the unseen key
    is inserted (its own statement, shared/statements/) and not yet committed when the
    key's first create_session arrives. The session waits for it and is refused."""
    from shared.core.db import statement
    from shared.web.auth import hash_guest_key

    key = new_guest_key()
    user = auth_emulator.new_user()
    api.post("register", {}, token=user.id_token)  # the users row the claim refers to
    with ThreadPoolExecutor(1) as pool, db.begin() as conn:
        recorded = conn.execute(
            statement("registration/claim_unseen_key"),
            {"guest_id": str(uuid.uuid4()), "key_hash": hash_guest_key(key), "user_id": user.uid},
        ).first()
        assert recorded is not None
        created = pool.submit(
            lambda: requests.post(api.url("create_session"), json={}, headers={"X-Guest-Key": key}, timeout=30)
        )
        wait_for_lock_waiters(db, 1)
    assert_error(created.result(), 403, "guest_claimed")
    assert scalar(db, "SELECT count(*) FROM sessions") == 0
    assert (guest_row(db, key).claimed_by, guest_row(db, key).visitor_number) == (user.uid, None)
