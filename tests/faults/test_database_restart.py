"""PostgreSQL restarts while 16 clients create 1,000 first sessions: every answer
is a session or a 503 with Retry-After, every session answered is stored, no
number is given twice, and the same functions serve again once it is back."""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
import requests

from devtools.ports import wait_until
from tests.faults.conftest import database_reader, worker_pids
from tests.support import assert_error, new_guest_key, rows

REQUESTS = 1000
CLIENTS = 16
RESTART_AFTER = 300  # answers received before the restart begins


@dataclass
class Attempt:
    """One create_session as a browser sends it: its own guest key and sessionId (for safe retries)."""

    key: str
    session_id: str
    sent: float = 0.0
    answered: float = 0.0
    status: int = 0
    body: dict | None = None
    retry_after: str | None = None


class Clients:
    """Browsers posting create_session, each thread with its own keep-alive connection."""

    def __init__(self, url: str):
        self.url = url
        self._local = threading.local()

    def send(self, attempt: Attempt) -> Attempt:
        http = getattr(self._local, "http", None) or requests.Session()
        self._local.http = http
        attempt.sent = time.monotonic()
        response = http.post(
            self.url,
            json={"sessionId": attempt.session_id, "experimentId": "restart"},
            headers={"X-Guest-Key": attempt.key},
            timeout=60,
        )
        attempt.answered = time.monotonic()
        attempt.status, attempt.retry_after = response.status_code, response.headers.get("Retry-After")
        attempt.body = response.json()
        if response.status_code == 503:
            assert_error(response, 503, "unavailable")
        return attempt


@pytest.mark.slow
@pytest.mark.parametrize(
    "stop_mode",
    [
        # As a Cloud SQL maintenance restart: open transactions rolled back, clients cut off.
        pytest.param("fast", id="clean-restart"),
        # As a crash: the server killed, crash recovery on start (a durable server, so that
        # what it acknowledged as committed survives).
        pytest.param("immediate", id="crash-restart"),
    ],
)
def test_postgres_restart_during_a_thousand_first_sessions(stack, own_postgres, functions_server, stop_mode):
    postgres = own_postgres(durable=stop_mode == "immediate")
    server = functions_server({**stack.env(), "DATABASE_URL": postgres.url}, workers=2, threads=8)
    workers = worker_pids(server)
    clients = Clients(f"{server.url}/create_session")
    attempts = [Attempt(new_guest_key(), str(uuid.uuid4())) for _ in range(REQUESTS)]
    answered = 0
    counting = threading.Lock()
    restart_due = threading.Event()
    restart: dict[str, float] = {}

    def send(attempt: Attempt) -> Attempt:
        nonlocal answered
        clients.send(attempt)
        with counting:
            answered += 1
            if answered == RESTART_AFTER:
                restart_due.set()
        return attempt

    def restart_postgres():
        assert restart_due.wait(120), "the clients never got that far"
        restart["down"] = time.monotonic()
        postgres.restart(stop_mode)
        restart["up"] = time.monotonic()

    restarter = threading.Thread(target=restart_postgres, daemon=True)
    restarter.start()
    started = time.monotonic()
    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(send, attempts))
    finished = time.monotonic()
    restarter.join()
    assert "up" in restart, "PostgreSQL did not come back"

    # What the clients saw: a session, or 503 unavailable with Retry-After (never a 500, never a hang).
    statuses = {status: sum(a.status == status for a in attempts) for status in {a.status for a in attempts}}
    assert set(statuses) <= {201, 503}, statuses
    refused = [a for a in attempts if a.status == 503]
    assert refused, "the restart happened while no request was in flight"
    assert all(a.retry_after and int(a.retry_after) > 0 for a in refused)
    created = [a for a in attempts if a.status == 201]
    assert all(a.body["sessionId"] == a.session_id and a.body["visitorNumber"] is not None for a in created)
    numbers = [a.body["visitorNumber"] for a in created]
    assert len(set(numbers)) == len(numbers), "a visitor number was given twice"
    served_again = [a.answered for a in created if a.sent >= restart["up"]]

    # The same server (and the same worker processes) serves again once PostgreSQL is back.
    probe = Attempt(new_guest_key(), str(uuid.uuid4()))
    wait_until(lambda: clients.send(probe).status in (200, 201), "create_session after the restart", timeout=30)
    recovered = min(served_again or [time.monotonic()])
    with ThreadPoolExecutor(CLIENTS) as pool:  # the refused ones again, as their browsers would retry them
        retried = list(pool.map(clients.send, refused))
    # 200: the first attempt was committed but its answer was lost in the restart; the
    # retry with its sessionId gets that session back instead of a second one.
    assert {a.status for a in retried} <= {200, 201}, [a.body for a in retried if a.status not in (200, 201)]
    assert server.process.process.poll() is None and worker_pids(server) == workers

    # What was stored: every answered session, with the number it was answered with.
    engine = database_reader(postgres.url)
    try:
        stored = {
            str(r.id): r
            for r in rows(
                engine,
                """
            SELECT s.id, s.visitor_number, s.guest_id, g.visitor_number AS guest_number
            FROM sessions s JOIN guests g ON g.id = s.guest_id""",
            )
        }
        guests = rows(engine, "SELECT count(*) AS n, count(DISTINCT visitor_number) AS numbers FROM guests")[0]
    finally:
        engine.dispose()
    every = [*attempts, probe]
    assert set(stored) == {a.session_id for a in every}
    for a in every:
        row = stored[a.session_id]
        assert (row.visitor_number, row.guest_number, str(row.guest_id)) == (
            a.body["visitorNumber"],
            a.body["visitorNumber"],
            a.body["guestId"],
        )
    # One guest per key, each numbered once: nothing half-written, no number twice.
    assert guests.n == guests.numbers == len(every)

    print(
        f"\n{stop_mode} restart: {REQUESTS} create_session from {CLIENTS} clients in {finished - started:.1f} s: "
        f"{statuses}; "
        f"restart after answer {RESTART_AFTER}, down {restart['up'] - restart['down']:.1f} s; "
        f"first 2xx {recovered - restart['up']:.2f} s after it was back; "
        f"retries of the {len(refused)} refused: "
        f"{ {s: sum(a.status == s for a in retried) for s in {a.status for a in retried}} }"
    )
