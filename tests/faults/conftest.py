"""Fault tests: parts of the stack that the test may stop, restart or slow down,
so each test starts its own (a PostgreSQL, a Firestore emulator, a functions
server) beside the session's stack, on free ports."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy

from devtools.ports import free_port
from devtools.postgres import LocalPostgres
from devtools.stack import PROJECT, FirestoreEmulator, FunctionsServer, migrate
from shared.core.db import plain_engine
from tests.conftest import environment


@pytest.fixture
def own_postgres(tmp_path):
    """start(durable=False): a migrated PostgreSQL of this test alone, which it may restart.

    Not durable (fast=True) turns fsync and synchronous commit off: a "fast" stop
    is a clean shutdown that still keeps every committed transaction, but a crash
    ("immediate" stop) may lose the last ones, so a crash test asks for a durable one.
    """
    started: list[LocalPostgres] = []

    def start(durable: bool = False) -> LocalPostgres:
        postgres = LocalPostgres(tmp_path / f"pg{len(started)}", fast=not durable)
        started.append(postgres)
        postgres.start()
        migrate(postgres.url)
        return postgres

    yield start
    for postgres in started:
        postgres.destroy()


@pytest.fixture
def own_firestore(tmp_path):
    """A Firestore emulator of this test, which keeps its documents across a stop and start."""
    emulator = FirestoreEmulator(tmp_path / "firestore", free_port(), keep_documents=True).start()
    yield emulator
    emulator.stop()


@pytest.fixture
def own_firestore_client(own_firestore):
    from google.cloud import firestore

    with environment(FIRESTORE_EMULATOR_HOST=own_firestore.host):
        client = firestore.Client(project=PROJECT)
    yield client
    client.close()


def database_reader(url: str) -> sqlalchemy.Engine:
    """The test's own view of a database: no pool, so no connection outlives a restart."""
    return plain_engine(url, poolclass=sqlalchemy.pool.NullPool)


@pytest.fixture
def functions_server(tmp_path):
    """start(env, **options): a functions server of this test, stopped at its end."""
    started: list[FunctionsServer] = []

    def start(env: dict[str, str], name: str = "functions", **options) -> FunctionsServer:
        server = FunctionsServer(free_port(), env, tmp_path / f"{name}.log", **options).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def worker_pids(server: FunctionsServer) -> set[int]:
    """The gunicorn worker processes of a server (a worker that died and was replaced shows here)."""
    master = server.process.process.pid
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return {int(pid) for pid in children}
