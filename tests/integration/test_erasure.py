"""Erasure against the storage trigger, in process on the real stores: an upload
being recorded when the erasure starts is waited for, and then erased with the rest."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

from devtools.stack import BUCKET
from shared.rights import erasure
from shared.visitors import uploads
from shared.web.auth import Guest, hash_guest_key
from tests.e2e.test_races import wait_for_lock_waiters
from tests.erasure_support import Traces, everything_left
from tests.support import new_guest_key


def test_an_upload_in_flight_is_waited_for_and_then_erased(stack, uploads_world, storage_client):
    world = uploads_world
    key = new_guest_key()
    session = world.new_session(guest=key)
    item = world.upload(session["sessionId"])
    event = uploads.parse_event({"type": uploads.FINALIZED}, item)
    stores = erasure.OtherStores(world.firestore, storage_client, BUCKET)
    holding, release = threading.Event(), threading.Event()

    def record_slowly():
        # What on_upload_finalized does, paused while it holds the session.
        with uploads.locked_session(world.db, uuid.UUID(session["sessionId"])) as (conn, found):
            holding.set()
            assert release.wait(30)
            stored = uploads.tag_object(storage_client, event, found)
            uploads.record_in_postgres(conn, event, found, stored)
            latest = uploads.latest_upload(conn, found)
            return uploads.record_in_firestore(world.firestore, event, found, stored, latest)

    with ThreadPoolExecutor(2) as pool:
        recording = pool.submit(record_slowly)
        assert holding.wait(30)
        erasing = pool.submit(erasure.erase_caller, world.db, Guest(hash_guest_key(key)), stores)
        wait_for_lock_waiters(world.db, 1)  # the erasure waits for the upload's lock
        assert not erasing.done()
        release.set()
        assert recording.result(30) is True  # recorded in Firestore while the session existed
        erased = erasing.result(30)

    assert (erased.status, erased.sessions, erased.uploads, erased.objects) == ("done", 1, 1, 1)
    assert world.rows() == {}  # the row recorded while the erasure waited went with its session
    traces = Traces()
    traces.add_session(session)
    assert everything_left(world.db, stack.firestore, storage_client, BUCKET, traces) == []


def test_the_trigger_after_the_erasure_deletes_the_object_and_records_nothing(
    ticket_check, stack, uploads_world, storage_client
):
    world = uploads_world
    key = new_guest_key()
    session = world.new_session(guest=key)
    ticket = world.ticket(session["sessionId"], "photo.png")  # asked for before the erasure
    erasure.erase_caller(
        world.db, Guest(hash_guest_key(key)), erasure.OtherStores(world.firestore, storage_client, BUCKET)
    )
    item = world.upload(session["sessionId"], "photo.png", ticket=ticket)

    outcome = uploads.record_upload(
        {"type": uploads.FINALIZED},
        item,
        engine=world.db,
        storage_client=storage_client,
        firestore_client=world.firestore,
        tickets=ticket_check,
    )

    assert (outcome.status, outcome.reason) == (
        "erased",
        f"session {session['sessionId']} was erased; deleted the object",
    )
    assert world.stored(item["name"]) is None
    assert world.uploads() == {} and world.visitors() == {} and world.rows() == {}


def test_retention_with_firestore_down_erases_the_rows_and_leaves_the_rest_pending(
    stack, uploads_world, storage_client
):
    """Which guests have uploads is read from PostgreSQL (SPEC §16): retention no longer needs
    Firestore to choose, so an idle guest's rows go at once and its Firestore part waits for resume."""
    from shared.ops import maintenance
    from tests.e2e.test_maintenance import age
    from tests.integration.test_statements import unreachable_firestore

    world = uploads_world
    idle, with_upload = new_guest_key(), new_guest_key()
    world.new_session(guest=idle)
    kept = world.new_session(guest=with_upload)["sessionId"]
    assert world.deliver(world.upload(kept)).status_code < 300
    for key in (idle, with_upload):
        age(world.db, key)
    down = erasure.OtherStores(unreachable_firestore(), storage_client, BUCKET)

    done = maintenance.apply_retention(world.db, down, days=30)

    assert (done.erased, done.pending, done.kept) == (1, 1, 0)
    assert [row["session_id"] for row in world.rows().values()] == [uuid.UUID(kept)]
    up = erasure.OtherStores(world.firestore, storage_client, BUCKET)
    assert erasure.resume(world.db, up).completed == 1
