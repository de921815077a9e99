"""shared.visitors.uploads called in this process against the real servers (PostgreSQL,
the Firestore and Storage emulators): what the HTTP tests cannot see, such as
the preconditions on the metadata write and the settings passed in."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from devtools.clients import FINALIZED
from devtools.ports import free_port
from devtools.stack import PROJECT
from shared.core import stores
from shared.core.encodings import rfc3339
from shared.core.errors import DependencyUnavailable
from shared.visitors import uploads
from tests.conftest import environment


class RecordingSession(requests.Session):
    """The Storage client's own HTTP session, noting each request it sends."""

    def __init__(self):
        super().__init__()
        self.sent: list[tuple[str, str]] = []

    def request(self, method, url, *args, **kwargs):
        self.sent.append((method, url))
        return super().request(method, url, *args, **kwargs)


@pytest.fixture
def recording_storage(stack):
    from google.cloud import storage

    session = RecordingSession()
    with environment(STORAGE_EMULATOR_HOST=stack.env()["STORAGE_EMULATOR_HOST"]):
        client = storage.Client(project=PROJECT, _http=session)
    return client, session


def attributes(item: dict, **overrides) -> dict:
    return {
        "id": "1",
        "type": FINALIZED,
        "source": f"//storage.googleapis.com/projects/_/buckets/{item['bucket']}",
        "specversion": "1.0",
        "subject": f"objects/{item['name']}",
        "time": item["timeCreated"],
        **overrides,
    }


def test_the_metadata_write_is_conditional_on_generation_and_metageneration(
    ticket_check, uploads_world, recording_storage
):
    """Cloud Storage refuses the write (412) if the generation was replaced or the
    metadata changed since it was read. The emulator does not enforce these
    conditions, so this checks that they are sent."""
    world = uploads_world
    client, session = recording_storage
    item = world.upload(world.new_session()["sessionId"], metadata={"k": "v"})

    outcome = uploads.record_upload(
        attributes(item),
        item,
        engine=world.db,
        storage_client=client,
        firestore_client=world.firestore,
        tickets=ticket_check,
    )

    assert outcome.status == "recorded"
    (patch,) = [url for method, url in session.sent if method == "PATCH"]
    query = parse_qs(urlsplit(patch).query)
    read = world.stored(item["name"])
    assert query["ifGenerationMatch"] == [item["generation"]]
    assert query["ifMetagenerationMatch"] == [str(int(read["metageneration"]) - 1)]  # the one it had read
    assert read["metadata"]["k"] == "v" and read["metadata"]["visitorNumber"] == "1"

    session.sent.clear()
    again = uploads.record_upload(
        attributes(item),
        item,
        engine=world.db,
        storage_client=client,
        firestore_client=world.firestore,
        tickets=ticket_check,
    )
    assert again.status == "duplicate"
    assert [method for method, _ in session.sent] == ["GET"]  # read, found tagged, nothing written


def test_metadata_a_client_forged_is_replaced(ticket_check, uploads_world):
    """The trigger's keys are the trigger's: values sent by a client are overwritten or removed."""
    world = uploads_world
    session = world.new_session(experiment_id=None)
    item = world.upload(
        session["sessionId"],
        metadata={"visitorNumber": "999", "experimentId": "forged", "uploadedAt": "1999-01-01T00:00:00Z", "k": "v"},
    )

    outcome = uploads.record_upload(
        attributes(item),
        item,
        engine=world.db,
        storage_client=world.bucket.client,
        firestore_client=world.firestore,
        tickets=ticket_check,
    )

    assert outcome.status == "recorded"
    metadata = world.stored(item["name"])["metadata"]
    assert metadata["visitorNumber"] == "1" and metadata["k"] == "v"
    assert metadata["uploadedAt"] == rfc3339(datetime.fromisoformat(item["timeCreated"]))
    # Sent as null, which deletes the key on Cloud Storage (the emulator keeps a null).
    assert metadata.get("experimentId") is None


def test_the_age_limit_is_a_parameter(ticket_check, uploads_world):
    world = uploads_world
    item = world.upload(world.new_session()["sessionId"])
    now = datetime.now(UTC)
    deps = dict(
        engine=world.db,
        storage_client=world.bucket.client,
        firestore_client=world.firestore,
        tickets=ticket_check,
        max_age_seconds=60,
        now=now,
    )

    old = attributes(item, time=rfc3339(now - timedelta(seconds=61)))
    outcome = uploads.record_upload(old, item, **deps)
    assert outcome.status == "ignored" and "UPLOAD_EVENT_MAX_AGE_SECONDS=60" in outcome.reason
    assert world.uploads() == {}

    recent = attributes(item, time=rfc3339(now - timedelta(seconds=59)))
    assert uploads.record_upload(recent, item, **deps).status == "recorded"


def test_an_event_without_a_time_is_handled(ticket_check, uploads_world):
    world = uploads_world
    item = world.upload(world.new_session()["sessionId"])
    event = {k: v for k, v in attributes(item).items() if k != "time"}

    outcome = uploads.record_upload(
        event,
        item,
        engine=world.db,
        storage_client=world.bucket.client,
        firestore_client=world.firestore,
        tickets=ticket_check,
    )
    assert outcome.status == "recorded"


def test_a_concurrent_duplicate_is_refused_by_the_commit_itself(uploads_world):
    """The emulator's transactions do not isolate readers: both see no upload.
    The create() precondition still lets only one commit count it."""
    world = uploads_world
    session = world.new_session()
    item = world.upload(session["sessionId"])
    event = uploads.parse_event(attributes(item), item)
    with uploads.locked_session(world.db, uuid.UUID(session["sessionId"])) as (_, found):
        pass
    stored = uploads.tag_object(world.bucket.client, event, found)

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=10) as pool:
        results = list(
            pool.map(lambda _: uploads.record_in_firestore(world.firestore, event, found, stored, None), range(10))
        )

    assert results.count(True) == 1
    assert world.visitors()["1"]["uploadCount"] == 1


def test_firestore_unreachable_raises_unavailable_within_the_deadline(stack, monkeypatch):
    """The client made by shared.visitors.uploads gives up after DEPENDENCY_DEADLINE_SECONDS,
    not after the library's 60 s, so the platform can redeliver sooner."""
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", PROJECT)
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", f"127.0.0.1:{free_port()}")  # nothing listens there
    client = stores.firestore_client()
    assert stores.firestore_client() is client  # made once, then reused
    event = uploads.ObjectEvent("1", None, "b", "sessions/x/y", 1)
    session = uploads.UploadSession(uuid.uuid4(), 1, None)
    stored = uploads.StoredObject("image/png", 1, datetime.now(UTC))

    started = time.monotonic()
    with pytest.raises(DependencyUnavailable):
        uploads.record_in_firestore(client, event, session, stored, None)
    assert time.monotonic() - started < stores.DEPENDENCY_DEADLINE_SECONDS + 5


def test_storage_unreachable_raises_unavailable(ticket_check, uploads_world, monkeypatch):
    from google.cloud import storage

    world = uploads_world
    item = world.upload(world.new_session()["sessionId"])
    with environment(STORAGE_EMULATOR_HOST=f"http://127.0.0.1:{free_port()}"):
        unreachable = storage.Client(project=PROJECT)

    with pytest.raises(uploads.RetryEvent):
        uploads.record_upload(
            attributes(item),
            item,
            engine=world.db,
            storage_client=unreachable,
            firestore_client=world.firestore,
            tickets=ticket_check,
        )
    assert world.uploads() == {}
