"""Upload tickets in process: their shape, what the signature binds, the expiry against timeCreated,
and the names create_upload_ticket accepts."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from shared.visitors import upload_tickets
from shared.web.limits import upload_name_problem

KEY = b"k" * 32
SESSION = str(uuid.uuid4())
NOW = datetime(2026, 12, 6, 12, 0, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=1)


def check(ticket, name=f"sessions/{SESSION}/a.png", created=NOW, key=KEY):
    return upload_tickets.problem(key, name, {upload_tickets.METADATA_KEY: ticket, "k": "v"}, created)


def test_a_ticket_is_version_expiry_and_a_43_character_mac():
    ticket = upload_tickets.sign(KEY, SESSION, "a.png", LATER)
    assert upload_tickets.TICKET.fullmatch(ticket)
    assert ticket.split(".")[1] == str(int(LATER.timestamp()))
    assert check(ticket) is None
    assert check(ticket, created=LATER) is None  # created at the very second it expires: still in time
    assert upload_tickets.sign(KEY, uuid.UUID(SESSION), "a.png", LATER) == ticket


@pytest.mark.parametrize(
    ("name", "created", "key", "reason"),
    [
        (f"sessions/{uuid.uuid4()}/a.png", NOW, KEY, "was not issued for this session and name"),
        (f"sessions/{SESSION}/b.png", NOW, KEY, "was not issued for this session and name"),
        (f"sessions/{SESSION.upper()}/a.png", NOW, KEY, "was not issued for this session and name"),
        (f"sessions/{SESSION}/dir/a.png", NOW, KEY, "no ticket is issued for"),
        (f"sessions/{SESSION}/a.png", NOW, b"another key" * 3, "was not issued for this session and name"),
        (f"sessions/{SESSION}/a.png", LATER + timedelta(seconds=1), KEY, "expired at 2026-12-06T13:00:00"),
        (f"sessions/{SESSION}/a.png", None, KEY, "no timeCreated"),
    ],
)
def test_a_ticket_lets_in_its_own_session_and_name_only_and_before_it_expires(name, created, key, reason):
    ticket = upload_tickets.sign(KEY, SESSION, "a.png", LATER)
    assert reason in check(ticket, name, created, key)


@pytest.mark.parametrize("metadata", [None, {}, {"k": "v"}, [], "x"])
def test_no_ticket(metadata):
    assert "no uploadTicket" in upload_tickets.problem(KEY, f"sessions/{SESSION}/a.png", metadata, NOW)


@pytest.mark.parametrize("ticket", ["", "v1", 42, "v2.1.abc", "v1.x." + "a" * 43, "v1.1." + "a" * 44])
def test_what_is_not_shaped_like_a_ticket(ticket):
    assert "is not a ticket" in check(ticket)


def test_a_changed_expiry_breaks_the_signature():
    version, expires, mac = upload_tickets.sign(KEY, SESSION, "a.png", LATER).split(".")
    assert "was not issued" in check(f"{version}.{int(expires) + 3600}.{mac}")


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("a.png", True),
        ("a b é (1).png", True),
        ("a" * 200, True),
        ("ü" * 200, True),
        ("", False),
        ("a" * 201, False),
        ("😀" * 101, False),  # 202 UTF-16 code units
        ("a/b", False),
        (".", False),
        ("..", False),
        ("a\nb", False),
        ("a\x00b", False),
        ("a\x7fb", False),
    ],
)
def test_a_name_is_one_segment_of_one_to_two_hundred_characters(name, ok):
    assert (upload_name_problem(name) is None) == ok
