"""Withdrawal while Firestore or Storage is down (SPEC §11): the rows go at once,
the answer is `202 pending`, the ledger says what is left, and `python -m
shared.rights.erasure resume` - run after the store is back, run twice, run from two
places at once - finishes it without deleting anything twice or failing.

Each test has its own Firestore and Storage emulators (which keep their data
across a stop and start) and its own functions server using them."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from devtools.clients import StorageEvents
from devtools.ports import free_port
from devtools.stack import BUCKET, PROJECT, ROOT, FirestoreEmulator, StorageEmulator
from tests.conftest import environment
from tests.erasure_support import Traces, everything_left
from tests.support import new_guest_key, rows, scalar
from tests.uploads_support import UploadsWorld


@pytest.fixture
def own_stores(tmp_path):
    """This test's Firestore and Storage emulators, which it may stop and start again."""
    firestore = FirestoreEmulator(tmp_path / "firestore", free_port(), keep_documents=True).start()
    storage = StorageEmulator(tmp_path / "storage", free_port()).start()
    yield firestore, storage
    firestore.stop()
    storage.stop()


@pytest.fixture
def world(stack, api, db, own_stores, functions_server):
    """Sessions, uploads and withdrawals through a functions server on this test's stores."""
    from google.cloud import firestore, storage

    firestore_emulator, storage_emulator = own_stores
    env = {
        **stack.env(),
        "FIRESTORE_EMULATOR_HOST": firestore_emulator.host,
        "STORAGE_EMULATOR_HOST": storage_emulator.url,
    }
    server = functions_server(env)
    with environment(FIRESTORE_EMULATOR_HOST=firestore_emulator.host, STORAGE_EMULATOR_HOST=storage_emulator.url):
        firestore_client = firestore.Client(project=PROJECT)
        storage_client = storage.Client(project=PROJECT)
    from tests.support import Api

    served = Api(server.url)
    world = UploadsWorld(
        served, db, firestore_client, storage_client.bucket(BUCKET), StorageEvents(served.url("on_upload_finalized"))
    )
    world.env = env
    world.storage_client = storage_client
    world.firestore_emulator, world.storage_emulator = firestore_emulator, storage_emulator
    yield world
    firestore_client.close()


def guest_with_uploads(world, traces: Traces, sessions: int = 2, uploads: int = 2) -> str:
    key = new_guest_key()
    for _ in range(sessions):
        session = world.new_session(guest=key)
        traces.add_session(session)
        world.api.post("submit_response", {"sessionId": session["sessionId"], "data": {"x": 1}}, guest=key)
        for u in range(uploads):
            assert world.deliver(world.upload(session["sessionId"], f"f{u}.png")).status_code < 300
    return key


def resume(world) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ["PATH"], **{k: v for k, v in world.env.items() if k != "FUNCTIONS_URL"}}
    return subprocess.run(
        [sys.executable, "-m", "shared.erasure", "resume"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def left(world, traces) -> list[str]:
    return everything_left(world.db, world.firestore_emulator, world.storage_client, BUCKET, traces)


def ledger_row(db):
    (row,) = rows(db, "SELECT * FROM erasures")
    return row


def test_firestore_down_during_withdrawal_leaves_it_pending_and_resume_completes_it(world):
    traces = Traces()
    key = guest_with_uploads(world, traces)
    world.firestore_emulator.stop()

    answer = world.api.post("delete_my_data", {}, guest=key)

    assert answer.status_code == 202, answer.text
    assert {k: v for k, v in answer.json().items() if k != "erasureId"} == {
        "status": "pending",
        "sessions": 2,
        "responses": 2,
        "uploads": 4,  # the rows its PostgreSQL part deleted (SPEC §16): known without Firestore
        "objects": 4,
    }
    assert scalar(world.db, "SELECT count(*) FROM sessions") == 0  # the SQL part is done
    assert scalar(world.db, "SELECT count(*) FROM guests") == 0
    row = ledger_row(world.db)
    assert (row.firestore_erased_at, row.completed_at, row.attempts) == (None, None, 1)
    assert row.storage_erased_at is not None

    world.firestore_emulator.start()
    assert len(world.uploads()) == 4  # what is left to erase, kept across the restart
    first = resume(world)
    assert first.returncode == 0, first.stderr
    assert "1 erasure(s) completed, 0 still pending" in first.stdout
    assert "erasures: 1 done, 0 pending" in first.stdout
    assert left(world, traces) == []
    row = ledger_row(world.db)
    assert (row.uploads, row.objects, row.attempts) == (4, 4, 1)
    assert row.completed_at is not None

    again = resume(world)  # nothing more to do, nothing fails, nothing changes
    assert again.returncode == 0, again.stderr
    assert "0 erasure(s) completed, 0 still pending" in again.stdout
    assert ledger_row(world.db) == row


def test_storage_down_during_withdrawal_leaves_it_pending_and_resume_completes_it(world):
    traces = Traces()
    key = guest_with_uploads(world, traces)
    world.storage_emulator.stop()

    answer = world.api.post("delete_my_data", {}, guest=key)

    assert answer.status_code == 202, answer.text
    assert {k: v for k, v in answer.json().items() if k != "erasureId"} == {
        "status": "pending",
        "sessions": 2,
        "responses": 2,
        "uploads": 4,
        "objects": None,
    }
    assert world.uploads() == {} and world.visitors() == {}
    row = ledger_row(world.db)
    assert (row.storage_erased_at, row.completed_at, row.attempts) == (None, None, 1)

    # While Storage is down, resume fails the part again, says so, and loses nothing.
    failed = resume(world)
    assert failed.returncode == 1
    assert "0 erasure(s) completed, 1 still pending" in failed.stdout
    assert ledger_row(world.db).attempts == 2

    world.storage_emulator.start()
    done = resume(world)
    assert done.returncode == 0, done.stderr
    assert left(world, traces) == []
    row = ledger_row(world.db)
    assert (row.uploads, row.objects) == (4, 4)
    assert row.completed_at is not None


def test_two_resumes_at_once_finish_every_pending_erasure_once(world):
    traces = Traces()
    keys = [guest_with_uploads(world, traces, sessions=1, uploads=2) for _ in range(6)]
    world.firestore_emulator.stop()
    world.storage_emulator.stop()
    for key in keys:
        assert world.api.post("delete_my_data", {}, guest=key).json()["status"] == "pending"
    world.firestore_emulator.start()
    world.storage_emulator.start()

    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(lambda _: resume(world), range(2)))

    assert [run.returncode for run in runs] == [0, 0], [run.stderr for run in runs]
    completed = [int(run.stdout.split("resume: ")[1].split(" ")[0]) for run in runs]
    assert sum(completed) == 6  # each erasure finished by exactly one of them
    assert left(world, traces) == []
    assert [(r.uploads, r.objects) for r in rows(world.db, "SELECT * FROM erasures")] == [(2, 2)] * 6
    assert scalar(world.db, "SELECT count(*) FROM erasures WHERE completed_at IS NULL") == 0
