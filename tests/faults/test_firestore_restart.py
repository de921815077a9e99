"""The Firestore emulator stops and starts again in the middle of a stream of
upload events. The test is the delivery system, as Eventarc with retries on:
an event not answered 2xx is delivered again until it is, and some that were
answered 2xx are delivered again anyway. Every upload is recorded exactly once."""

from __future__ import annotations

import queue
import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest

from devtools.clients import StorageEvents
from devtools.stack import BUCKET
from shared.visitors.uploads import upload_id
from tests.support import new_guest_key
from tests.uploads_support import UploadsWorld

UPLOADS = 150
VISITORS = 10
DELIVERERS = 8
DUPLICATES = 0.2  # the share of accepted events that are delivered again anyway
STOP_AFTER = 40  # accepted events before the emulator stops
FAILURES_WHILE_DOWN = 3  # refused deliveries seen before it starts again


@dataclass
class Delivery:
    item: dict
    duplicate: bool = False


@dataclass
class DeliveryLog:
    """What the delivery system saw."""

    accepted: Counter = field(default_factory=Counter)  # upload name -> 2xx answers
    refused: list = field(default_factory=list)  # (status, seconds it took)
    errors: list = field(default_factory=list)  # exceptions, and events given up
    lock: threading.Lock = field(default_factory=threading.Lock)
    enough_accepted: threading.Event = field(default_factory=threading.Event)
    enough_refused: threading.Event = field(default_factory=threading.Event)


@pytest.mark.slow
def test_firestore_restart_during_upload_events_records_each_upload_once(
    stack, api, db, bucket, own_firestore, own_firestore_client, functions_server
):
    server = functions_server({**stack.env(), "FIRESTORE_EMULATOR_HOST": own_firestore.host}, workers=2, threads=8)
    world = UploadsWorld(api, db, own_firestore_client, bucket, StorageEvents(f"{server.url}/on_upload_finalized"))
    rng = random.Random(7)
    guests = [new_guest_key() for _ in range(VISITORS)]
    sessions = [
        world.new_session(guest=guests[i % VISITORS], experiment_id=f"exp-{i % 3}") for i in range(2 * VISITORS)
    ]
    chosen = [rng.choice(sessions) for _ in range(UPLOADS)]
    with ThreadPoolExecutor(8) as pool:
        items = list(pool.map(lambda n: world.upload(chosen[n]["sessionId"], f"file-{n}.png"), range(UPLOADS)))
    expected = Counter(str(session["visitorNumber"]) for session in chosen)

    pending: queue.Queue[Delivery | None] = queue.Queue()
    for item in items:
        pending.put(Delivery(item))
    log = DeliveryLog()

    deadline = time.monotonic() + 180  # past it, a refused event is given up (and the test fails)

    def deliverer():
        while (delivery := pending.get()) is not None:
            try:
                deliver(delivery)
            except Exception as error:
                log.errors.append(repr(error))
            finally:
                pending.task_done()

    def deliver(delivery: Delivery):
        started = time.monotonic()
        response = world.deliver(delivery.item)
        took = time.monotonic() - started
        with log.lock:
            if 200 <= response.status_code < 300:
                log.accepted[delivery.item["name"]] += 1
                if len(log.accepted) >= STOP_AFTER:
                    log.enough_accepted.set()
                if not delivery.duplicate and rng.random() < DUPLICATES:
                    pending.put(Delivery(delivery.item, duplicate=True))
                return
            log.refused.append((response.status_code, took))
            if len(log.refused) >= FAILURES_WHILE_DOWN:
                log.enough_refused.set()
        if time.monotonic() < deadline:
            pending.put(delivery)  # redelivered, as after any non-2xx answer
        else:
            log.errors.append(f"gave up on {delivery.item['name']}: still {response.status_code}")

    outage: dict[str, float] = {}

    def stop_and_start_firestore():
        assert log.enough_accepted.wait(120), "the deliveries never got that far"
        outage["accepted_before"] = len(log.accepted)
        outage["down"] = time.monotonic()
        own_firestore.stop()
        try:
            assert log.enough_refused.wait(120), "no delivery failed while Firestore was down"
        finally:
            own_firestore.start()  # on the same port, with the documents it had
            outage["up"] = time.monotonic()

    controller = threading.Thread(target=stop_and_start_firestore)
    controller.start()
    started = time.monotonic()
    threads = [threading.Thread(target=deliverer) for _ in range(DELIVERERS)]
    for thread in threads:
        thread.start()
    pending.join()  # every event, and every redelivery and duplicate, answered 2xx
    for _ in threads:
        pending.put(None)
    for thread in threads:
        thread.join()
    finished = time.monotonic()
    controller.join()
    assert "up" in outage

    # What the delivery system saw: failures are 5xx (so redelivered) and quick, and then accepted.
    assert log.errors == []
    assert set(log.accepted) == {item["name"] for item in items}
    assert log.refused and all(status >= 500 for status, _ in log.refused)
    assert max(took for _, took in log.refused) < 15, "a delivery hung while Firestore was down"
    assert 0 < outage["accepted_before"] < UPLOADS

    # What was stored: one upload document per object generation, counted once per visitor.
    uploads = world.uploads()
    assert set(uploads) == {upload_id(BUCKET, item["name"], int(item["generation"])) for item in items}
    by_name = {upload["name"]: upload for upload in uploads.values()}
    for item, session in zip(items, chosen):
        upload = by_name[item["name"]]
        assert (upload["generation"], upload["sessionId"], upload["visitorNumber"]) == (
            item["generation"],
            session["sessionId"],
            session["visitorNumber"],
        )
    assert {number: visitor["uploadCount"] for number, visitor in world.visitors().items()} == expected
    for item, session in zip(items, chosen):
        metadata = world.stored(item["name"])["metadata"]
        assert (metadata["visitorNumber"], metadata["sessionId"]) == (
            str(session["visitorNumber"]),
            session["sessionId"],
        )
    # The emulator really went down holding documents, and came back with them.
    emulator_log = (own_firestore.workdir / "firestore-emulator.log").read_text()
    saved, loaded = (
        [int(line.split()[1]) for line in emulator_log.splitlines() if line.startswith(word)]
        for word in ("saved ", "loaded ")
    )
    assert loaded[:2] == [0, saved[0]] and saved[0] > 0

    duplicates = sum(log.accepted.values()) - UPLOADS
    print(
        f"\n{UPLOADS} uploads of {VISITORS} visitors in {finished - started:.1f} s: "
        f"Firestore down for {outage['up'] - outage['down']:.1f} s after {outage['accepted_before']} accepted; "
        f"{len(log.refused)} deliveries refused ({Counter(s for s, _ in log.refused)}, slowest "
        f"{max(t for _, t in log.refused):.1f} s) and redelivered; {duplicates} duplicates accepted; "
        f"{saved[0]} documents kept across the restart"
    )
