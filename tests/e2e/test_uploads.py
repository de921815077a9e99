"""on_upload_finalized over HTTP: real objects in the Storage emulator, their
finalized CloudEvents sent as Eventarc sends them, and what the trigger stored
(the object's metadata, the Firestore documents)."""

from __future__ import annotations

import json
import random
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import requests
from sqlalchemy import text

from devtools.clients import StorageEvents
from devtools.ports import free_port, wait_until
from devtools.stack import BUCKET, FunctionsServer
from shared.visitors import upload_tickets
from shared.visitors.uploads import upload_id
from tests.support import new_guest_key, register, scalar
from tests.uploads_support import SIGNED, parse_time


def rfc3339(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def test_uploaded_object_is_tagged_and_recorded(uploads_world):
    world = uploads_world
    session = world.new_session(experiment_id="study-7")
    item = world.upload(
        session["sessionId"],
        "answer.pdf",
        b"%PDF-1.7 ...",
        "application/pdf",
        metadata={"origin": "camera", "lang": "de"},
    )

    response = world.deliver(item)

    assert 200 <= response.status_code < 300, response.text
    created = parse_time(item["timeCreated"])
    stored = world.stored(item["name"])
    assert stored["generation"] == item["generation"]
    assert stored["metadata"] == {
        "origin": "camera",
        "lang": "de",  # the object's own keys are kept
        "uploadTicket": item["metadata"]["uploadTicket"],
        "visitorNumber": "1",
        "sessionId": session["sessionId"],
        "experimentId": "study-7",
        "uploadedAt": rfc3339(created),
    }
    uploads = world.uploads()
    assert list(uploads) == [upload_id(BUCKET, item["name"], int(item["generation"]))]
    upload = next(iter(uploads.values()))
    assert upload.pop("recordedAt") >= created
    assert upload == {
        "bucket": BUCKET,
        "name": item["name"],
        "generation": item["generation"],
        "contentType": "application/pdf",
        "size": len(b"%PDF-1.7 ..."),
        "sessionId": session["sessionId"],
        "visitorNumber": 1,
        "experimentId": "study-7",
        "uploadedAt": created,
    }
    assert world.visitors() == {"1": {"visitorNumber": 1, "uploadCount": 1, "lastUploadAt": created}}
    (row,) = world.rows().values()
    assert row.pop("recorded_at") >= created
    assert row == {
        "id": upload_id(BUCKET, item["name"], int(item["generation"])),
        "session_id": uuid.UUID(session["sessionId"]),
        "visitor_number": 1,
        "bucket": BUCKET,
        "name": item["name"],
        "generation": int(item["generation"]),
        "content_type": "application/pdf",
        "size": len(b"%PDF-1.7 ..."),
        "uploaded_at": created,
    }


def test_get_visitor_lists_an_upload_once_its_event_was_handled_and_not_before(uploads_world):
    world, key = uploads_world, new_guest_key()
    older = world.new_session(guest=key)["sessionId"]
    newer = world.new_session(guest=key)["sessionId"]

    def uploads_by_session() -> dict[str, list]:
        answer = world.api.get("get_visitor", guest=key)
        assert answer.status_code == 200, answer.text
        return {s["sessionId"]: s["uploads"] for s in answer.json()["sessions"]}

    first = world.upload(older, "first.png", b"\x89PNG 1", "image/png")
    second = world.upload(older, "second.txt", b"hello", "text/plain")
    # In the bucket, but their events not handled yet: nothing is recorded, nothing listed.
    assert uploads_by_session() == {newer: [], older: []}

    assert world.deliver(second).ok
    assert uploads_by_session() == {
        newer: [],
        older: [
            {
                "name": f"sessions/{older}/second.txt",
                "contentType": "text/plain",
                "size": 5,
                "uploadedAt": rfc3339(parse_time(second["timeCreated"])),
            }
        ],
    }
    assert world.deliver(first).ok and world.deliver(first).ok  # a redelivery lists it once
    listed = uploads_by_session()
    # In the order the files were made, whatever order their events came in; the ticket's path is the name.
    assert [u["name"] for u in listed[older]] == [first["name"], second["name"]] and listed[newer] == []
    assert listed[older][0]["size"] == len(b"\x89PNG 1") and listed[older][0]["contentType"] == "image/png"


def test_a_session_without_experiment_gets_no_experiment_key(uploads_world):
    world = uploads_world
    session = world.new_session(experiment_id=None)
    item = world.upload(session["sessionId"], "notes.txt", b"hello", "text/plain")

    assert world.deliver(item).ok

    assert set(world.stored(item["name"])["metadata"]) == {"visitorNumber", "sessionId", "uploadedAt", "uploadTicket"}
    (upload,) = world.uploads().values()
    assert upload["experimentId"] is None and upload["visitorNumber"] == 1


def test_the_same_event_five_times_changes_nothing_after_the_first(uploads_world):
    world = uploads_world
    session = world.new_session()
    item = world.upload(session["sessionId"])

    assert world.deliver(item).ok
    tagged = world.stored(item["name"])
    first = world.uploads()
    for _ in range(4):
        response = world.deliver(item)
        assert 200 <= response.status_code < 300, response.text

    again = world.stored(item["name"])
    assert again["metadata"] == tagged["metadata"]
    assert again["metageneration"] == tagged["metageneration"]  # not even rewritten
    assert world.uploads() == first  # one document, untouched (recordedAt too)
    assert world.visitors()["1"]["uploadCount"] == 1


def test_the_same_event_fifty_times_at_once_counts_once(uploads_world):
    world = uploads_world
    session = world.new_session()
    earlier = world.upload(session["sessionId"], "earlier.png")
    assert world.deliver(earlier).ok
    item = world.upload(session["sessionId"], "burst.png")

    with ThreadPoolExecutor(max_workers=50) as pool:
        statuses = list(pool.map(lambda _: world.deliver(item).status_code, range(50)))

    assert all(200 <= status < 300 for status in statuses), statuses
    assert len(world.uploads()) == 2
    assert sorted(row["name"] for row in world.rows().values()) == sorted([earlier["name"], item["name"]])
    visitor = world.visitors()["1"]
    assert visitor["uploadCount"] == 2  # raised by one for the burst
    assert visitor["lastUploadAt"] == parse_time(item["timeCreated"])
    assert world.stored(item["name"])["metadata"]["visitorNumber"] == "1"


def test_two_hundred_uploads_of_ten_visitors_are_each_counted(uploads_world):
    world = uploads_world
    rng = random.Random(4)
    guests = [new_guest_key() for _ in range(10)]
    sessions = [world.new_session(guest=guests[i % 10], experiment_id=f"exp-{i % 3}") for i in range(20)]
    assert len({s["visitorNumber"] for s in sessions}) == 10
    # An uneven spread: each of the 200 uploads goes to a random session.
    items = [
        world.upload(session["sessionId"], f"file-{n}.png")
        for n, session in enumerate(rng.choice(sessions) for _ in range(200))
    ]
    expected: dict[str, int] = {}
    for item in items:
        number = next(s["visitorNumber"] for s in sessions if s["sessionId"] in item["name"])
        expected[str(number)] = expected.get(str(number), 0) + 1
    deliveries = items + rng.sample(items, 40)  # and some redeliveries among them
    rng.shuffle(deliveries)

    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(lambda item: world.deliver(item).status_code, deliveries))

    assert all(200 <= status < 300 for status in statuses)
    assert len(world.uploads()) == 200
    assert {number: visitor["uploadCount"] for number, visitor in world.visitors().items()} == expected
    rows = world.rows()
    assert set(rows) == set(world.uploads())
    assert Counter(str(row["visitor_number"]) for row in rows.values()) == expected
    latest = {str(n): max(r["uploaded_at"] for r in rows.values() if r["visitor_number"] == n) for n in range(1, 11)}
    assert {number: visitor["lastUploadAt"] for number, visitor in world.visitors().items()} == latest
    for item in rng.sample(items, 10):
        assert world.stored(item["name"])["metadata"]["sessionId"] in item["name"]


# --- Acknowledged: 2xx, nothing written -------------------------------------


def assert_nothing_written(world, item: dict | None = None, metadata: dict | None = None):
    """Nothing recorded; the object, if still there, has `metadata` beside its upload ticket."""
    assert world.uploads() == {}
    assert world.visitors() == {}
    if item is not None:
        stored = world.stored(item["name"])
        assert stored is None or without_ticket(stored.get("metadata")) == metadata


def without_ticket(metadata: dict | None) -> dict | None:
    rest = {key: value for key, value in (metadata or {}).items() if key != upload_tickets.METADATA_KEY}
    return rest or None


def test_object_outside_sessions_is_acknowledged(uploads_world):
    world = uploads_world
    session = world.new_session()
    names = [
        "avatars/me.png",
        f"session/{session['sessionId']}/a.png",
        f"public/sessions/{session['sessionId']}/a.png",
    ]
    for name in names:
        item = world.upload(session["sessionId"], name=name, metadata={"k": "v"})
        response = world.deliver(item)
        assert 200 <= response.status_code < 300, (name, response.text)
        assert_nothing_written(world, item, {"k": "v"})


@pytest.mark.parametrize("tickets", ["monitor", "off"])
def test_object_under_sessions_but_of_no_session_is_acknowledged_untouched_when_not_enforcing(
    uploads_world, stack, tmp_path, tickets
):
    """With UPLOAD_TICKETS=enforce such objects are deleted (tests/e2e/test_upload_tickets.py)."""
    world = uploads_world
    session = world.new_session()
    server = FunctionsServer(free_port(), {**stack.env(), "UPLOAD_TICKETS": tickets}, tmp_path / "f.log").start()
    try:
        events = StorageEvents(f"{server.url}/on_upload_finalized")
        for name in (f"sessions/{session['sessionId']}", "sessions/not-a-uuid/a.png"):
            item = world.upload(session["sessionId"], name=name, metadata={"k": "v"})
            response = events.deliver(item)
            assert 200 <= response.status_code < 300, (name, response.text)
            assert_nothing_written(world, item, {"k": "v"})
    finally:
        server.stop()


def test_a_session_id_is_matched_in_its_lower_case_spelling_only(uploads_world, stack):
    """SPEC §5: delete_my_data deletes sessions/{id}/ in the id's canonical (lower-case) spelling, so
    an object under another spelling is not the session's: never recorded nor tagged (it would
    otherwise be counted for the visitor and survive their withdrawal); no ticket names it, so it
    is deleted and logged (UPLOAD_TICKETS=enforce), even with the lower-case spelling's ticket."""
    world = uploads_world
    # Letters in its first part, so that both other spellings differ from the canonical one (a
    # random id's first eight characters are all digits once in 43 tests).
    session = world.new_session(session_id="abcdef" + str(uuid.uuid4())[6:])
    spellings = [session["sessionId"].upper(), session["sessionId"][:8].upper() + session["sessionId"][8:]]
    assert session["sessionId"] not in spellings
    log = stack.workdir / "functions.log"
    for spelling in spellings:
        before = log.stat().st_size
        item = world.upload(
            session["sessionId"],
            name=f"sessions/{spelling}/a.png",
            metadata={"k": "v"},
            ticket=world.ticket(session["sessionId"], "a.png"),
        )
        assert item["name"] == f"sessions/{spelling}/a.png"  # as the emulator stored it
        response = world.deliver(item)
        assert 200 <= response.status_code < 300, (spelling, response.text)
        assert_nothing_written(world, item, None)
        assert world.stored(item["name"]) is None
        assert "upload refused" in log.read_bytes()[before:].decode()

    lower = world.upload(session["sessionId"], "a.png")
    assert world.deliver(lower).ok
    assert world.stored(lower["name"])["metadata"]["sessionId"] == session["sessionId"]
    assert len(world.uploads()) == 1


def test_unknown_session_is_acknowledged_and_its_object_deleted(uploads_world):
    world = uploads_world
    world.new_session()
    item = world.upload(str(uuid.uuid4()), ticket=SIGNED)  # no ticket can be asked for: signed here

    assert world.deliver(item).ok
    assert_nothing_written(world, item, None)
    assert world.stored(item["name"]) is None


def test_deleted_object_is_acknowledged(uploads_world):
    world = uploads_world
    session = world.new_session()
    item = world.upload(session["sessionId"])
    world.bucket.blob(item["name"]).delete()

    assert world.deliver(item).ok
    assert_nothing_written(world)
    assert world.stored(item["name"]) is None


def test_event_for_a_replaced_generation_does_not_tag_the_new_object(uploads_world):
    world = uploads_world
    session = world.new_session()
    old = world.upload(session["sessionId"], "photo.png", b"first")
    new = world.upload(session["sessionId"], "photo.png", b"second version", metadata={"k": "v"})
    assert new["generation"] != old["generation"]

    assert world.deliver(old).ok
    assert_nothing_written(world, new, {"k": "v"})

    assert world.deliver(new).ok  # the new generation's own event tags and records it
    assert world.stored(new["name"])["metadata"]["visitorNumber"] == "1"
    (upload,) = world.uploads().values()
    assert upload["generation"] == new["generation"] and upload["size"] == len(b"second version")


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda item: {**item, "generation": "not-a-number"}, id="bad-generation"),
        pytest.param(lambda item: {**item, "generation": 0}, id="zero-generation"),
        pytest.param(lambda item: {k: v for k, v in item.items() if k != "name"}, id="no-name"),
        pytest.param(lambda item: {k: v for k, v in item.items() if k != "bucket"}, id="no-bucket"),
        pytest.param(lambda item: {**item, "name": 42}, id="name-not-text"),
        pytest.param(lambda item: [item], id="data-is-a-list"),
        pytest.param(lambda item: {**item, "bucket": "someone-elses-bucket"}, id="another-bucket"),
    ],
)
def test_malformed_event_data_is_acknowledged(uploads_world, change):
    world = uploads_world
    session = world.new_session()
    item = world.upload(session["sessionId"])

    response = world.deliver(item, body=json.dumps(change(item)).encode())

    assert 200 <= response.status_code < 300, response.text
    assert_nothing_written(world, item, None)


def test_event_data_that_is_not_json_is_acknowledged(uploads_world):
    world = uploads_world
    item = world.upload(world.new_session()["sessionId"])

    response = world.deliver(item, body=b"not json at all", content_type="text/plain")

    assert 200 <= response.status_code < 300, response.text
    assert_nothing_written(world, item, None)


def test_other_event_types_are_acknowledged(uploads_world):
    """A metadataUpdated event (as the trigger's own write fires) never loops back into a write."""
    world = uploads_world
    item = world.upload(world.new_session()["sessionId"])

    for event_type in ("google.cloud.storage.object.v1.metadataUpdated", "google.cloud.storage.object.v1.deleted"):
        assert world.deliver(item, event_type=event_type).ok
    assert_nothing_written(world, item, None)


def test_event_older_than_the_limit_is_dropped(uploads_world):
    world = uploads_world
    item = world.upload(world.new_session()["sessionId"])
    day_and_a_bit = datetime.now(UTC) - timedelta(seconds=86400 + 60)

    assert world.deliver(item, time=rfc3339(day_and_a_bit)).ok
    assert_nothing_written(world, item, None)
    # Just inside the limit it is handled.
    assert world.deliver(item, time=rfc3339(datetime.now(UTC) - timedelta(hours=23))).ok
    assert len(world.uploads()) == 1


def test_event_without_required_cloudevent_attributes_is_refused_by_the_framework(uploads_world):
    world = uploads_world
    item = world.upload(world.new_session()["sessionId"])
    headers = world.events.headers(item)
    del headers["ce-id"]

    response = requests.post(world.events.url, json=item, headers=headers, timeout=30)
    assert response.status_code == 400  # not a CloudEvent at all: Eventarc never sends this
    assert_nothing_written(world, item, None)


def test_session_without_a_visitor_number_is_recorded_without_one(uploads_world):
    """SPEC §3's degraded path: numbering failed, the session exists with visitorNumber null."""
    world = uploads_world
    world.new_session()  # takes number 1
    with world.db.begin() as conn:  # the sequence is exhausted (MAXVALUE must exceed MINVALUE 1)
        conn.execute(text("ALTER SEQUENCE visitor_number_seq MAXVALUE 2"))
        conn.execute(text("SELECT setval('visitor_number_seq', 2)"))
    session = world.new_session(experiment_id="study-2")
    assert session["visitorNumber"] is None
    item = world.upload(session["sessionId"], metadata={"k": "v"})

    assert world.deliver(item).ok

    metadata = without_ticket(world.stored(item["name"])["metadata"])
    assert metadata == {
        "k": "v",
        "sessionId": session["sessionId"],
        "experimentId": "study-2",
        "uploadedAt": rfc3339(parse_time(item["timeCreated"])),
    }
    (upload,) = world.uploads().values()
    assert upload["visitorNumber"] is None and upload["sessionId"] == session["sessionId"]
    assert world.visitors() == {}
    assert world.deliver(item).ok and len(world.uploads()) == 1
    assert [row["visitor_number"] for row in world.rows().values()] == [None]


def test_an_old_redelivery_does_not_move_last_upload_back(uploads_world):
    world = uploads_world
    session = world.new_session()
    first = world.upload(session["sessionId"], "a.png")
    second = world.upload(session["sessionId"], "b.png")

    assert world.deliver(second).ok
    assert world.deliver(first).ok  # delivered late

    visitor = world.visitors()["1"]
    assert visitor["uploadCount"] == 2
    assert visitor["lastUploadAt"] == parse_time(second["timeCreated"])


# --- Transient failures: 5xx, then redelivery completes the work once -------


def redeliver_until_accepted(world, item, timeout: float = 30.0) -> int:
    """Redeliver as Eventarc does after a failure, until it is accepted; the attempts it took."""
    deadline = time.monotonic() + timeout
    attempts = 0
    while True:
        attempts += 1
        response = world.deliver(item)
        if 200 <= response.status_code < 300:
            return attempts
        assert response.status_code >= 500, response.text
        assert time.monotonic() < deadline, f"still {response.status_code} after {attempts} redeliveries"
        time.sleep(0.5)


@pytest.mark.slow
def test_firestore_unavailable_fails_and_redelivery_completes_once(uploads_world, stack):
    world = uploads_world
    item = world.upload(world.new_session()["sessionId"])
    stack.firestore.stop()
    try:
        started = time.monotonic()
        response = world.deliver(item)
        failed_after = time.monotonic() - started
        assert response.status_code >= 500
        assert failed_after < 15, f"took {failed_after:.1f} s to give up"
        assert world.rows() == {}  # PostgreSQL commits last: its row went back with the failure
    finally:
        stack.firestore.start()  # an emulator keeps documents in memory: it is back, and empty

    redeliver_until_accepted(world, item)
    assert world.deliver(item).ok
    (upload,) = world.uploads().values()
    assert upload["visitorNumber"] == 1
    assert world.visitors()["1"]["uploadCount"] == 1
    assert [row["visitor_number"] for row in world.rows().values()] == [1]
    assert world.stored(item["name"])["metadata"]["visitorNumber"] == "1"


@pytest.mark.slow
def test_database_unavailable_fails_and_redelivery_completes_once(uploads_world, stack, engine):
    world = uploads_world
    item = world.upload(world.new_session()["sessionId"])
    stack.postgres.stop()
    try:
        response = world.deliver(item)
        assert response.status_code >= 500
        assert world.uploads() == {} and set(world.stored(item["name"])["metadata"]) == {"uploadTicket"}  # not tagged
    finally:
        stack.postgres.start()
        engine.dispose()  # the tests' own pool held connections to the stopped server

    redeliver_until_accepted(world, item)
    assert world.deliver(item).ok
    assert world.visitors()["1"]["uploadCount"] == 1
    assert len(world.uploads()) == 1 and len(world.rows()) == 1
    assert scalar(engine, "SELECT count(*) FROM sessions") == 1  # it is back, with its data


@pytest.mark.slow
def test_storage_unavailable_fails_and_redelivery_completes_once(uploads_world, stack):
    world = uploads_world
    item = world.upload(world.new_session()["sessionId"])
    stack.storage.stop()
    try:
        response = world.deliver(item)
        assert response.status_code >= 500
    finally:
        stack.storage.start()  # objects are kept on disk: the same generation is back
    assert world.uploads() == {}

    redeliver_until_accepted(world, item)
    assert world.deliver(item).ok
    assert world.stored(item["name"])["metadata"]["visitorNumber"] == "1"
    assert world.visitors()["1"]["uploadCount"] == 1


# --- make dev: the bridge that stands in for Eventarc -----------------------


def test_dev_bridge_delivers_new_objects_within_seconds(uploads_world, stack):
    world = uploads_world
    session = world.new_session()
    bridge = stack.event_bridge(interval=0.2).start()
    try:
        item = world.upload(session["sessionId"], "live.png")
        replaced = world.upload(session["sessionId"], "again.png")
        wait_until(lambda: len(world.uploads()) >= 2, "the bridge's delivery of both uploads", timeout=5)
        assert world.stored(item["name"])["metadata"]["sessionId"] == session["sessionId"]
        assert world.visitors()["1"]["uploadCount"] == 2
        # A new generation of the same name is a new event.
        newer = world.upload(session["sessionId"], "again.png", b"v2")
        assert newer["generation"] != replaced["generation"]
        wait_until(lambda: len(world.uploads()) >= 3, "the bridge's delivery of the new generation", timeout=10)
    finally:
        bridge.stop()
    assert world.visitors()["1"]["uploadCount"] == 3


# --- The row's number follows the session's ----------------------------------


def test_an_uploads_number_follows_its_session_into_an_account(uploads_world, auth_emulator):
    """SPEC §16: register (a merge of guest #1 into user #2) and backfill renumber the rows as
    they renumber responses; the object keeps the number it was tagged with (SPEC §5)."""
    world = uploads_world
    key = new_guest_key()
    session = world.new_session(guest=key)  # guest: number 1
    item = world.upload(session["sessionId"])
    assert world.deliver(item).ok
    user = auth_emulator.new_user()
    assert world.api.post("create_session", {}, token=user.id_token).status_code == 201  # user: number 2

    answer = register(world.api, user, key)

    assert answer.status_code == 200, answer.text
    assert answer.json()["mergedFromVisitorNumber"] == 1
    assert [row["visitor_number"] for row in world.rows().values()] == [2]
    ticket = world.signed_ticket(session["sessionId"], "later.png")
    later = world.upload(session["sessionId"], "later.png", ticket=ticket)
    assert world.deliver(later).ok
    assert sorted(row["visitor_number"] for row in world.rows().values()) == [2, 2]
    assert world.stored(later["name"])["metadata"]["visitorNumber"] == "2"
