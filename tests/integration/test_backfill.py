"""The backfill: visitors created while numbering was failing get numbers, and
so do their sessions and responses; idempotent, and safe beside live traffic.

The visitors are made the way production makes them: through the functions,
over HTTP, while nextval('visitor_number_seq') fails."""

import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from sqlalchemy import text

from shared.ops.backfill import backfill
from shared.web.auth import hash_guest_key
from tests.support import new_guest_key, resume_numbering, rows, scalar, stop_numbering

ROOT = Path(__file__).resolve().parents[2]
TABLES = {"users": "id", "guests": "id", "sessions": "id", "responses": "id", "visitor_merges": "from_number"}


def snapshot(db) -> dict[str, list]:
    return {table: rows(db, f"SELECT * FROM {table} ORDER BY {key}") for table, key in TABLES.items()}


def visit(api, sessions=1, responses_each=2, **credentials) -> list[dict]:
    """Sessions with responses, as a frontend makes them; returns the sessions."""
    made = []
    for _ in range(sessions):
        session = api.post("create_session", {}, **credentials)
        assert session.status_code == 201, session.text
        for level in range(responses_each):
            answer = api.post(
                "submit_response",
                {"sessionId": session.json()["sessionId"], "level": level, "data": {"level": level}},
                **credentials,
            )
            assert answer.status_code == 201, answer.text
        made.append(session.json())
    return made


def guest_number(db, key):
    return scalar(db, "SELECT visitor_number FROM guests WHERE key_hash = :h", h=hash_guest_key(key))


def assert_every_row_carries_its_visitors_number(db) -> None:
    assert scalar(db, "SELECT count(*) FROM sessions WHERE visitor_number IS NULL") == 0
    assert scalar(db, "SELECT count(*) FROM responses WHERE visitor_number IS NULL") == 0
    assert (
        scalar(
            db,
            """
        SELECT count(*) FROM sessions s
        LEFT JOIN users u ON u.id = s.user_id
        LEFT JOIN guests g ON g.id = s.guest_id
        WHERE s.visitor_number IS DISTINCT FROM COALESCE(u.visitor_number, g.visitor_number)""",
        )
        == 0
    )
    assert (
        scalar(
            db,
            "SELECT count(*) FROM responses r JOIN sessions s ON s.id = r.session_id "
            "WHERE r.visitor_number IS DISTINCT FROM s.visitor_number",
        )
        == 0
    )


def test_backfill_numbers_visitors_and_fills_their_sessions_and_responses(api, db, auth_emulator):
    numbered_early = new_guest_key()
    visit(api, guest=numbered_early)  # number 1, before the trouble
    stop_numbering(db)
    first, second = new_guest_key(), new_guest_key()
    user = auth_emulator.new_user()
    assert all(s["visitorNumber"] is None for s in visit(api, sessions=2, guest=first))
    visit(api, guest=second)
    visit(api, token=user.id_token)
    resume_numbering(db)
    untouched = [r for r in snapshot(db)["sessions"] if r.visitor_number is not None]

    summary = backfill(db)

    assert (summary.guests_numbered, summary.users_numbered) == (2, 1)
    assert (summary.sessions_filled, summary.responses_filled, summary.pending) == (4, 8, 0)
    assert summary.line() == (
        "backfill: numbered 2 guests and 1 user; filled 4 sessions and 8 responses; no session is left without a number"
    )
    # New numbers, distinct, oldest visitor first; a visitor that had one keeps it.
    numbers = [
        guest_number(db, first),
        guest_number(db, second),
        scalar(db, "SELECT visitor_number FROM users WHERE id = :u", u=user.uid),
    ]
    assert numbers == sorted(numbers) and len(set(numbers)) == 3 and 1 not in numbers
    assert guest_number(db, numbered_early) == 1
    assert [r for r in snapshot(db)["sessions"] if r.id in {u.id for u in untouched}] == untouched
    assert_every_row_carries_its_visitors_number(db)
    # What a frontend sees after a reload.
    assert api.get("get_visitor", guest=first).json()["visitorNumber"] == numbers[0]
    assert api.post("create_session", {}, token=user.id_token).json()["visitorNumber"] == numbers[2]


def test_backfill_is_idempotent(api, db):
    stop_numbering(db)
    visit(api, guest=new_guest_key())
    resume_numbering(db)
    backfill(db)
    before = snapshot(db)

    again = backfill(db)

    assert (again.guests_numbered, again.users_numbered, again.sessions_filled, again.responses_filled) == (0, 0, 0, 0)
    assert again.line() == "backfill: nothing to do; no session is left without a number"
    assert snapshot(db) == before


def test_visitor_numbered_since_keeps_its_number_and_its_old_sessions_take_it(api, db):
    key = new_guest_key()
    stop_numbering(db)
    (old,) = visit(api, guest=key)
    resume_numbering(db)
    (new,) = visit(api, guest=key)  # create_session numbers the guest; the old session still has none
    assert new["visitorNumber"] is not None
    assert rows(db, "SELECT visitor_number FROM sessions WHERE id = :id", id=old["sessionId"]) == [(None,)]

    summary = backfill(db)

    assert (summary.guests_numbered, summary.sessions_filled, summary.responses_filled) == (0, 1, 2)
    assert guest_number(db, key) == new["visitorNumber"]
    assert_every_row_carries_its_visitors_number(db)


def test_claimed_guest_is_left_to_its_user(api, db, auth_emulator):
    key = new_guest_key()
    user = auth_emulator.new_user()
    stop_numbering(db)
    visit(api, sessions=2, guest=key)
    registered = api.post("register", {}, token=user.id_token, guest=key).json()
    assert registered["migratedSessions"] == 2 and registered["user"]["visitorNumber"] is None
    resume_numbering(db)

    summary = backfill(db)

    assert (summary.guests_numbered, summary.users_numbered, summary.sessions_filled) == (0, 1, 2)
    assert guest_number(db, key) is None  # its sessions are the user's now; the user was numbered
    number = scalar(db, "SELECT visitor_number FROM users")
    assert number is not None
    assert rows(db, "SELECT DISTINCT user_id, visitor_number FROM sessions") == [(user.uid, number)]
    assert_every_row_carries_its_visitors_number(db)


def test_a_visitor_busy_with_a_request_is_skipped_not_waited_for(api, db):
    busy, free = new_guest_key(), new_guest_key()
    stop_numbering(db)
    visit(api, guest=busy)
    visit(api, guest=free)
    resume_numbering(db)
    with ThreadPoolExecutor(1) as pool, db.connect() as request_in_flight:
        # What create_session holds while it inserts a session for this guest.
        request_in_flight.execute(
            text("SELECT 1 FROM guests WHERE key_hash = :h FOR SHARE"), {"h": hash_guest_key(busy)}
        )
        try:
            first = pool.submit(backfill, db).result(timeout=30)  # would hang if it waited
        finally:
            request_in_flight.rollback()

    assert (first.guests_numbered, first.pending) == (1, 1)
    assert first.line().endswith("; 1 visitor busy, run it again")
    assert guest_number(db, busy) is None and guest_number(db, free) is not None

    second = backfill(db)

    assert (second.guests_numbered, second.pending) == (1, 0)
    assert_every_row_carries_its_visitors_number(db)


@pytest.mark.slow
def test_backfill_beside_live_traffic_leaves_every_row_consistent(api, db, auth_emulator):
    stop_numbering(db)
    keys = [new_guest_key() for _ in range(12)]
    users = [auth_emulator.new_user() for _ in range(4)]
    old_sessions = {key: visit(api, guest=key)[0]["sessionId"] for key in keys}
    for user in users:
        old_sessions[user.uid] = visit(api, token=user.id_token)[0]["sessionId"]
    resume_numbering(db)
    credentials = [({"X-Guest-Key": key}, old_sessions[key]) for key in keys] + [
        ({"Authorization": f"Bearer {u.id_token}"}, old_sessions[u.uid]) for u in users
    ]
    barrier = threading.Barrier(len(credentials) + 1)
    summaries = []

    def traffic(headers, old_session):
        # New sessions (which number the visitor) and responses in its unnumbered session.
        http, answers = requests.Session(), []
        barrier.wait()
        for i in range(4):
            answers.append(
                http.post(
                    api.url("submit_response"), json={"sessionId": old_session, "data": i}, headers=headers, timeout=30
                ).status_code
            )
            answers.append(http.post(api.url("create_session"), json={}, headers=headers, timeout=30).status_code)
        return answers

    def run_backfill():
        barrier.wait()
        for _ in range(3):
            summaries.append(backfill(db, batch=2))  # many small transactions

    with ThreadPoolExecutor(len(credentials) + 1) as pool:
        sent = [pool.submit(traffic, headers, old) for headers, old in credentials]
        backfilling = pool.submit(run_backfill)
        answers = [code for future in sent for code in future.result()]
        backfilling.result()
    summaries.append(backfill(db))  # whatever was busy during the runs above

    assert set(answers) == {201}
    assert summaries[-1].pending == 0
    assert scalar(db, "SELECT count(*) FROM responses") == len(credentials) * (2 + 4)
    assert_every_row_carries_its_visitors_number(db)
    numbers = [
        r.visitor_number
        for r in rows(db, "SELECT visitor_number FROM guests UNION ALL SELECT visitor_number FROM users")
    ]
    assert len(numbers) == len(set(numbers)) == len(credentials)


def run_cli(env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "shared.backfill"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def test_command_prints_a_one_line_summary(api, db, functions_env):
    stop_numbering(db)
    visit(api, guest=new_guest_key())
    resume_numbering(db)

    done = run_cli(functions_env)
    again = run_cli(functions_env)

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "backfill: numbered 1 guest and 0 users; filled 1 session and 2 responses; no session is left without a number"
    ]
    assert again.stdout.splitlines() == ["backfill: nothing to do; no session is left without a number"]


def test_command_says_why_it_cannot_run(api, db, functions_env):
    stop_numbering(db)
    visit(api, guest=new_guest_key())
    failing = run_cli(functions_env)  # numbering still fails
    resume_numbering(db)
    unconfigured = run_cli({"PATH": functions_env["PATH"]})

    assert failing.returncode == 1
    assert failing.stderr.startswith("backfill failed: 2200H") and "visitor_number_seq" in failing.stderr
    assert scalar(db, "SELECT count(*) FROM guests WHERE visitor_number IS NULL") == 1  # nothing half-done
    assert unconfigured.returncode == 2
    assert unconfigured.stderr.strip().startswith("DATABASE_URL is not set")


def test_command_logs_no_uid_even_at_debug(api, db, auth_emulator, functions_env):
    stop_numbering(db)
    user = auth_emulator.new_user()
    visit(api, token=user.id_token)
    visit(api, guest=new_guest_key())
    resume_numbering(db)

    done = run_cli({**functions_env, "LOG_LEVEL": "DEBUG"})

    assert done.returncode == 0, done.stderr
    assert user.uid not in done.stdout + done.stderr
    guest_id = str(scalar(db, "SELECT id FROM guests"))
    assert guest_id not in done.stdout + done.stderr
    assert '"numbered 1 user"' in done.stdout  # the DEBUG lines are there, by count and numbers
