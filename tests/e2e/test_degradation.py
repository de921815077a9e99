"""Graceful degradation: numbering fails while the database is up; the database goes down and comes back."""

import pytest
import requests

from devtools.ports import free_port
from devtools.postgres import LocalPostgres
from devtools.stack import FunctionsServer, migrate
from tests.support import assert_error, new_guest_key, rows


def test_exhausted_sequence_still_creates_the_session_without_a_number(api, db, stack):
    with db.begin() as conn:
        conn.exec_driver_sql("ALTER SEQUENCE visitor_number_seq MAXVALUE 2")
    first_key = new_guest_key()
    assert api.post("create_session", guest=first_key).json()["visitorNumber"] == 1
    assert api.post("create_session", guest=new_guest_key()).json()["visitorNumber"] == 2

    late_key = new_guest_key()
    response = api.post("create_session", {"experimentId": "e"}, guest=late_key)

    assert response.status_code == 201
    body = response.json()
    assert body["visitorNumber"] is None and body["experimentId"] == "e"
    (session,) = rows(
        db, "SELECT visitor_number, guest_id FROM sessions WHERE id = CAST(:id AS uuid)", id=body["sessionId"]
    )
    assert session.visitor_number is None and str(session.guest_id) == body["guestId"]
    (guest,) = rows(db, "SELECT visitor_number FROM guests WHERE id = CAST(:id AS uuid)", id=body["guestId"])
    assert guest.visitor_number is None
    # A visitor that already has a number is not affected.
    assert api.post("create_session", guest=first_key).json()["visitorNumber"] == 1
    log = (stack.workdir / "functions.log").read_text()
    assert '"severity": "WARNING"' in log and "visitor numbering failed" in log

    # Once numbering works again, the numberless guest gets a number on its next session.
    with db.begin() as conn:
        conn.exec_driver_sql("ALTER SEQUENCE visitor_number_seq NO MAXVALUE")
    assert api.post("create_session", guest=late_key).json()["visitorNumber"] == 3


@pytest.fixture
def own_database(tmp_path):
    postgres = LocalPostgres(tmp_path / "pg", fast=True).start()
    migrate(postgres.url)
    yield postgres
    postgres.destroy()


@pytest.mark.slow
def test_database_down_answers_503_and_recovers_without_a_restart(stack, own_database, tmp_path):
    env = {**stack.env(), "DATABASE_URL": own_database.url}
    server = FunctionsServer(free_port(), env, tmp_path / "functions.log").start()
    try:
        url = f"{server.url}/create_session"
        key = new_guest_key()
        assert requests.post(url, headers={"X-Guest-Key": key}, timeout=30).status_code == 201

        own_database.stop()
        for _ in range(3):  # pooled connections are broken now, and new ones are refused
            down = requests.post(url, headers={"X-Guest-Key": new_guest_key()}, timeout=30)
            assert_error(down, 503, "unavailable")
            assert int(down.headers["Retry-After"]) > 0
            assert "pg8000" not in down.text and "127.0.0.1" not in down.text

        own_database.start()
        back = requests.post(url, headers={"X-Guest-Key": key}, timeout=30)
        assert back.status_code == 201
        assert back.json()["visitorNumber"] == 1

        from shared.core.db import plain_engine

        engine = plain_engine(own_database.url)
        try:
            assert len(rows(engine, "SELECT id FROM sessions")) == 2  # nothing from the refused requests
            assert len(rows(engine, "SELECT id FROM guests")) == 1
        finally:
            engine.dispose()
        assert server.process.process.poll() is None  # the same server, never restarted
    finally:
        server.stop()
