"""The engine from shared.core.db against a PostgreSQL of its own: statements outside
transactions, and what a database restart costs the pool (no checkout ping)."""

import socket
import threading
import uuid

import pytest
from sqlalchemy import text

from devtools.postgres import LocalPostgres
from shared.core.config import DatabaseSettings
from shared.core.db import make_engine, single_statement, transaction
from shared.core.errors import DependencyUnavailable
from shared.ops.migrate import apply_migrations
from shared.visitors import sessions
from shared.web.auth import Guest, hash_guest_key
from shared.web.models import NewSession

POOL_SIZE = 4


@pytest.fixture
def postgres(tmp_path):
    server = LocalPostgres(tmp_path / "pg", fast=True).start()
    yield server
    server.destroy()


@pytest.fixture
def engine(postgres, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", postgres.url)
    monkeypatch.setenv("DB_POOL_SIZE", str(POOL_SIZE))
    engine = make_engine(DatabaseSettings.from_env())
    apply_migrations(engine)
    yield engine
    engine.dispose()


def guest() -> Guest:
    return Guest(hash_guest_key(uuid.uuid4().hex))


def fill_pool(engine) -> None:
    """Check out POOL_SIZE connections at once, so the pool holds that many open ones."""
    barrier = threading.Barrier(POOL_SIZE)

    def hold():
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            barrier.wait(timeout=30)

    threads = [threading.Thread(target=hold) for _ in range(POOL_SIZE)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert engine.pool.checkedin() == POOL_SIZE


def count(engine, sql: str) -> int:
    with transaction(engine) as conn:
        return conn.execute(text(sql)).scalar_one()


def test_a_single_statement_commits_by_itself_and_leaves_the_connection_transactional(engine):
    with single_statement(engine) as conn:
        conn.rows(text("INSERT INTO guests (id, key_hash) VALUES (gen_random_uuid(), sha256('a'))"))
        # Seen at once by another connection: no transaction is left open.
        assert count(engine, "SELECT count(*) FROM guests") == 1

    # The same pooled connection, back in a transaction, rolls back when the block raises.
    with pytest.raises(RuntimeError):
        with transaction(engine) as conn:
            conn.execute(text("INSERT INTO guests (id, key_hash) VALUES (gen_random_uuid(), sha256('b'))"))
            raise RuntimeError("undo")
    assert count(engine, "SELECT count(*) FROM guests") == 1


def test_after_a_restart_one_request_meets_it_and_the_rest_succeed(engine, postgres):
    _, first = sessions.create_session(engine, guest(), NewSession())
    fill_pool(engine)

    postgres.restart()

    outcomes = []
    for _ in range(2 * POOL_SIZE):
        try:
            outcomes.append(sessions.create_session(engine, guest(), NewSession())[1].visitor_number)
        except DependencyUnavailable:
            outcomes.append("503")

    # Every stale connection was dropped together: at most the first call failed.
    assert "503" not in outcomes[1:]
    numbers = [n for n in outcomes if n != "503"]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
    assert first.visitor_number not in numbers
    assert count(engine, "SELECT count(*) FROM sessions") == 1 + len(numbers)


PREPARED = text("SELECT statement, generic_plans + custom_plans AS runs FROM pg_prepared_statements")


def test_single_statements_are_prepared_once_per_connection_and_run_from_then_on(engine):
    lookup = "SELECT count(*) FROM guests WHERE key_hash = :key_hash"
    with single_statement(engine) as conn:
        counts = [conn.first(text(lookup), {"key_hash": bytes([n])}).count for n in range(3)]
        prepared = {row.statement: row.runs for row in conn.connection.execute(PREPARED)}
    assert counts == [0, 0, 0]
    # Prepared once (pg8000 numbers the parameters), executed three times.
    assert prepared["SELECT count(*) FROM guests WHERE key_hash = $1"] == 3

    # Inside a transaction statements go the usual way, unprepared.
    with transaction(engine) as conn:
        conn.execute(text("SELECT count(*) FROM sessions WHERE visitor_number = :n"), {"n": 1})
        statements = [row.statement for row in conn.execute(PREPARED)]
    assert not any("FROM sessions" in statement for statement in statements)


def test_prepared_statements_can_be_switched_off(postgres, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", postgres.url)
    monkeypatch.setenv("DB_PREPARED_STATEMENTS", "false")
    engine = make_engine(DatabaseSettings.from_env())
    try:
        with single_statement(engine) as conn:
            assert conn.first(text("SELECT 1 + :n AS two"), {"n": 1}).two == 2
            assert conn.connection.execute(PREPARED).all() == []
    finally:
        engine.dispose()


def engine_for(url: str, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", url)
    return make_engine(DatabaseSettings.from_env())


def test_sslmode_disable_connects_without_building_a_tls_context(postgres, monkeypatch):
    import ssl

    made = []
    real = ssl.create_default_context
    monkeypatch.setattr(ssl, "create_default_context", lambda *a, **k: made.append(1) or real(*a, **k))
    url = postgres.url.replace("?sslmode=disable", "?sslmode=disable&application_name=visitors-test")
    engine = engine_for(url, monkeypatch)
    try:
        with single_statement(engine) as conn:
            row = conn.first(text("SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()"))
        assert row.application_name == "visitors-test"
        assert made == []
    finally:
        engine.dispose()

    # The default (prefer) asks for TLS first: pg8000 builds a context, this server declines, plain TCP follows.
    engine = engine_for(postgres.url.replace("?sslmode=disable", ""), monkeypatch)
    try:
        with single_statement(engine) as conn:
            assert conn.first(text("SELECT 1 AS one")).one == 1
        assert made == [1]
    finally:
        engine.dispose()


@pytest.mark.parametrize("mode", ["require", "verify-ca", "verify-full"])
def test_sslmode_that_needs_tls_refuses_a_server_without_it_with_503(postgres, monkeypatch, mode):
    # pgserver's PostgreSQL has no TLS: a mode that demands it must not fall back to plain TCP.
    engine = engine_for(postgres.url.replace("sslmode=disable", f"sslmode={mode}"), monkeypatch)
    try:
        with pytest.raises(DependencyUnavailable):
            with single_statement(engine) as conn:
                conn.rows(text("SELECT 1"))
    finally:
        engine.dispose()


def test_connections_send_large_statements_without_waiting_for_an_ack(engine):
    """TCP_NODELAY: a statement of more than one segment (a batch of responses) is not held
    back ~40 ms by Nagle's algorithm (shared.core.db._send_at_once)."""
    with engine.connect() as conn:
        sock = conn.connection.dbapi_connection._usock
        assert sock.family in (socket.AF_INET, socket.AF_INET6)
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
