"""Visitor numbers under concurrency: many first sessions, several server processes."""

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from devtools.ports import free_port
from devtools.stack import FunctionsServer
from tests.support import new_guest_key, rows

VISITORS = 500
CLIENTS = 32


@pytest.fixture
def second_server(stack, tmp_path):
    """Another instance of the functions on the same database, as Cloud Run would scale out."""
    server = FunctionsServer(free_port(), stack.env(), tmp_path / "second.log", workers=2, threads=8).start()
    yield server
    server.stop()


@pytest.mark.slow
def test_distinct_first_sessions_take_exactly_consecutive_numbers(api, db, second_server):
    bases = [api.base_url, second_server.url]  # 1 + 2 gunicorn worker processes

    def first_session(i: int):
        response = requests.post(
            f"{bases[i % 2]}/create_session",
            json={"experimentId": "load"},
            headers={"X-Guest-Key": new_guest_key()},
            timeout=60,
        )
        return response.status_code, response.json()

    with ThreadPoolExecutor(CLIENTS) as pool:
        results = list(pool.map(first_session, range(VISITORS)))

    assert [status for status, _ in results] == [201] * VISITORS
    numbers = sorted(body["visitorNumber"] for _, body in results)
    assert numbers == list(range(1, VISITORS + 1))
    stored = rows(db, "SELECT visitor_number FROM guests ORDER BY visitor_number")
    assert [r.visitor_number for r in stored] == numbers
    assert len(rows(db, "SELECT id FROM sessions WHERE visitor_number IS NOT NULL")) == VISITORS


@pytest.mark.slow
def test_one_guest_racing_its_own_first_sessions_keeps_one_number(api, db, second_server):
    key = new_guest_key()
    bases = [api.base_url, second_server.url]

    def session(i: int):
        return requests.post(f"{bases[i % 2]}/create_session", headers={"X-Guest-Key": key}, timeout=60).json()

    with ThreadPoolExecutor(16) as pool:
        bodies = list(pool.map(session, range(64)))

    assert len({body["visitorNumber"] for body in bodies}) == 1
    assert len({body["guestId"] for body in bodies}) == 1
    assert len(rows(db, "SELECT id FROM guests")) == 1
    assert len(rows(db, "SELECT id FROM sessions")) == 64
