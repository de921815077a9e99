"""The guest-creation limit's pure parts: which address counts, its keyed hash, the settings."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from shared.core import config
from shared.core.config import ConfigError
from shared.visitors.guest_limit import WINDOW_SECONDS, Window, address_hash, client_address
from shared.web.auth import Guest, User


@pytest.fixture(autouse=True)
def behind_a_front_end(monkeypatch):
    """X-Forwarded-For as Google's front end writes it (config.x_forwarded_for_trusted)."""
    for name in ("K_SERVICE", "K_REVISION", "K_CONFIGURATION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("X_FORWARDED_FOR_TRUSTED", "true")


def request(forwarded: str | None = None, peer: str = "127.0.0.1") -> Request:
    headers = {"X-Forwarded-For": forwarded} if forwarded is not None else {}
    return Request(EnvironBuilder(headers=headers, environ_base={"REMOTE_ADDR": peer}).get_environ())


@pytest.mark.parametrize(
    "forwarded, expected",
    [
        ("203.0.113.7", "203.0.113.7"),  # what the front end appended, alone
        ("10.1.2.3, 203.0.113.7", "203.0.113.7"),  # a client's own entry is on the left
        ("1.1.1.1,2.2.2.2 ,  203.0.113.7", "203.0.113.7"),
        ("2001:0DB8:0:0::1", "2001:db8::/64"),  # an IPv6 address counts as its /64
        ("2001:db8::ffff:1:2:3", "2001:db8::/64"),  # ... whichever of its 2^64 it uses
        ("2001:db8:0:1::1", "2001:db8:0:1::/64"),  # the next /64 is another client
        ("::ffff:203.0.113.7", "203.0.113.7"),  # IPv4 written as IPv6 is that IPv4 address
        ("garbage, 203.0.113.7", "203.0.113.7"),
        ("203.0.113.7, not-an-ip", "not-an-ip"),  # the last entry is what counts, whatever it is
        ("", "192.0.2.1"),
        (" , ", "192.0.2.1"),  # no entries: the socket's peer
    ],
)
def test_the_rightmost_forwarded_entry_is_the_client(forwarded, expected):
    assert client_address(request(forwarded, peer="192.0.2.1")) == expected


def test_without_the_header_the_peer_counts():
    assert client_address(request(None, peer="192.0.2.9")) == "192.0.2.9"


@pytest.mark.parametrize("forwarded", ["203.0.113.7", "10.1.2.3, 203.0.113.7", "198.51.100.7,203.0.113.9"])
def test_with_no_front_end_the_header_is_the_clients_and_the_peer_counts(monkeypatch, forwarded):
    monkeypatch.delenv("X_FORWARDED_FOR_TRUSTED")
    assert client_address(request(forwarded, peer="192.0.2.9")) == "192.0.2.9"
    monkeypatch.setenv("K_SERVICE", "create-session")  # deployed on Cloud Run: Google's front end wrote it
    assert client_address(request(forwarded, peer="192.0.2.9")) == forwarded.split(",")[-1].strip()


def test_the_hash_is_hmac_sha256_under_the_key():
    assert address_hash("203.0.113.7", b"k" * 32) == hmac.new(b"k" * 32, b"203.0.113.7", hashlib.sha256).digest()
    assert address_hash("203.0.113.7", b"k" * 32) != address_hash("203.0.113.7", b"j" * 32)


def test_the_window_of_a_request(monkeypatch):
    monkeypatch.setenv("GUEST_LIMIT_PER_HOUR", "5")
    monkeypatch.setenv("GUEST_LIMIT_KEY", "x" * 32)
    window = Window.of_request(request("203.0.113.7"), Guest(b"\0" * 32))
    assert window.params() == {
        "guest_limit": 5,
        "address_hash": address_hash("203.0.113.7", b"x" * 32),
        "window_seconds": WINDOW_SECONDS,
    }
    assert "address" not in repr(window) and window.address_hash.hex() not in repr(window)
    # Anonymous accounts count; signed-in ones never do (and need no key).
    assert Window.of_request(request("203.0.113.7"), User("u", None, "anonymous")).limit == 5
    monkeypatch.delenv("GUEST_LIMIT_KEY")
    assert Window.of_request(request("203.0.113.7"), User("u", "u@example.org", "password")) == Window.off()
    with pytest.raises(ConfigError, match="GUEST_LIMIT_KEY is not set"):
        Window.of_request(request("203.0.113.7"), Guest(b"\0" * 32))
    monkeypatch.setenv("GUEST_LIMIT_PER_HOUR", "0")
    assert Window.of_request(request("203.0.113.7"), Guest(b"\0" * 32)) == Window.off()


def test_the_settings_and_their_one_line_problems(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@h/db")
    assert config.guest_limit_per_hour() == 200 and config.guest_retention_days() is None
    assert config.check() == []  # no key needed to check (migrate, backfill, deploy run without it)
    monkeypatch.setenv("GUEST_LIMIT_PER_HOUR", "many")
    monkeypatch.setenv("GUEST_LIMIT_KEY", "short")
    monkeypatch.setenv("GUEST_RETENTION_DAYS", "0")
    monkeypatch.setenv("MAINTENANCE_INVOKER", "scheduler")
    monkeypatch.setenv("MAINTENANCE_CERTS_URL", "http://evil.example/certs")
    assert config.check() == [
        "GUEST_LIMIT_PER_HOUR='many' is not an integer: set it to a whole number such as 200",
        "GUEST_RETENTION_DAYS=0 is too small: it must be at least 1",
        "MAINTENANCE_INVOKER='scheduler' is not a service account email: use NAME@PROJECT.iam.gserviceaccount.com",
        "MAINTENANCE_CERTS_URL='http://evil.example/certs' must be an https:// URL (or a local one for tests)",
    ]
    monkeypatch.setenv("GUEST_LIMIT_PER_HOUR", "10")
    assert config.check()[0].startswith("GUEST_LIMIT_KEY is too short")
