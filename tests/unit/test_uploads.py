"""The pure parts of shared.visitors.uploads and its settings: no server needed."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from shared.core import config
from shared.core.config import ConfigError
from shared.visitors.uploads import FINALIZED, Ignored, Unrelated, parse_event, parse_time, session_id_of, upload_id

SESSION = "3f0c8a4e-5b7d-4c1e-9a2b-6d8e0f1a2b3c"
ITEM = {"bucket": "b", "name": f"sessions/{SESSION}/a.png", "generation": "1700000000000001"}


def test_upload_id_is_stable_per_generation_and_distinct_otherwise():
    first = upload_id("b", "sessions/x/a.png", 1)
    assert first == upload_id("b", "sessions/x/a.png", 1)
    assert len(first) == 64 and int(first, 16) >= 0
    others = {
        upload_id("b", "sessions/x/a.png", 2),
        upload_id("c", "sessions/x/a.png", 1),
        upload_id("b", "sessions/x/a.png#1", 1),
        upload_id("b", "sessions/x/b.png", 1),
    }
    assert first not in others and len(others) == 4


@pytest.mark.parametrize("name", [f"sessions/{SESSION}/a.png", f"sessions/{SESSION}/dir/a b.png"])
def test_objects_of_a_session(name):
    assert session_id_of(name) == uuid.UUID(SESSION)


@pytest.mark.parametrize(
    "name",
    [
        "a.png",
        f"sessions/{SESSION}",
        f"sessions/{SESSION}/",
        "sessions/123/a.png",
        f"x/sessions/{SESSION}/a.png",
        f"sessions/{SESSION}x/a.png",
        # SPEC §5: the canonical lower-case spelling only, the one erasure deletes
        f"sessions/{SESSION.upper()}/a.png",
        f"sessions/{SESSION[:-1]}C/a.png",
    ],
)
def test_objects_outside_sessions(name):
    with pytest.raises(Ignored) as ignored:
        session_id_of(name)
    assert isinstance(ignored.value, Unrelated)


def test_parse_event():
    event = parse_event({"type": FINALIZED, "id": "7", "time": "2026-01-02T03:04:05.123456789Z"}, ITEM)
    assert (event.bucket, event.name, event.generation, event.event_id) == ("b", ITEM["name"], 1700000000000001, "7")
    assert event.time == datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    assert parse_event({"type": FINALIZED}, {**ITEM, "generation": 5}).generation == 5


@pytest.mark.parametrize(
    "attributes, data, reason",
    [
        ({"type": "google.cloud.storage.object.v1.metadataUpdated"}, ITEM, "is not"),
        ({"type": FINALIZED}, "text", "not a JSON object"),
        ({"type": FINALIZED}, None, "not a JSON object"),
        ({"type": FINALIZED}, {**ITEM, "generation": True}, "generation"),
        ({"type": FINALIZED}, {**ITEM, "generation": "-1"}, "generation"),
        ({"type": FINALIZED}, {**ITEM, "bucket": ""}, "bucket"),
        ({"type": FINALIZED}, {**ITEM, "name": None}, "name"),
        ({"type": FINALIZED, "time": "yesterday"}, ITEM, "RFC 3339"),
    ],
)
def test_unusable_events(attributes, data, reason):
    with pytest.raises(Ignored) as ignored:
        parse_event(attributes, data)
    assert reason in ignored.value.reason


def test_other_bucket_is_ignored_only_when_one_is_configured():
    assert parse_event({"type": FINALIZED}, ITEM, expected_bucket=None).bucket == "b"
    with pytest.raises(Ignored, match="STORAGE_BUCKET"):
        parse_event({"type": FINALIZED}, ITEM, expected_bucket="mine")


@pytest.mark.parametrize(
    "value, expected",
    [
        ("2026-01-02T03:04:05Z", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2026-01-02T05:04:05.5+02:00", datetime(2026, 1, 2, 3, 4, 5, 500000, tzinfo=UTC)),
        ("2026-13-02T03:04:05Z", None),
        ("2026-01-02 03:04:05", None),
    ],
)
def test_parse_time(value, expected):
    assert parse_time(value) == expected


def test_settings(monkeypatch):
    assert config.storage_bucket() is None
    assert config.upload_event_max_age_seconds() == 86400
    monkeypatch.setenv("STORAGE_BUCKET", "gs://demo-visitors.appspot.com/")
    monkeypatch.setenv("UPLOAD_EVENT_MAX_AGE_SECONDS", "3600")
    assert config.storage_bucket() == "demo-visitors.appspot.com"
    assert config.upload_event_max_age_seconds() == 3600


@pytest.mark.parametrize(
    "name, value",
    [
        ("STORAGE_BUCKET", "Has Spaces"),
        ("STORAGE_BUCKET", "-x"),
        ("UPLOAD_EVENT_MAX_AGE_SECONDS", "a day"),
        ("UPLOAD_EVENT_MAX_AGE_SECONDS", "0"),
    ],
)
def test_malformed_settings_name_the_variable(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as error:
        config.storage_bucket() if name == "STORAGE_BUCKET" else config.upload_event_max_age_seconds()
    message = str(error.value)
    assert message.startswith(name) and "\n" not in message
