"""The guest-creation limit (SPEC §12): at most GUEST_LIMIT_PER_HOUR new visitors per client
address per rolling hour, across instances, refused before a number is taken.

Each test serves the functions itself, with a low limit (the session's stack has a high
one) and the stack's GUEST_LIMIT_KEY. Requests carry X-Forwarded-For as Google's front end
sends it to a Cloud Function: whatever the client put there, then the address the front end
saw. The rightmost entry is the client's address (shared.visitors.guest_limit.client_address).
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from devtools.ports import free_port
from devtools.stack import FunctionsServer
from tests.support import Api, assert_error, new_guest_key, rows, scalar

LIMIT = 20


def forwarded(address: str, forged: str | None = None) -> dict:
    """X-Forwarded-For as the front end passes it on: the client's own value, then the peer it saw."""
    return {"X-Forwarded-For": f"{forged}, {address}" if forged else address}


@pytest.fixture
def limited_servers(stack, db, tmp_path):
    """start(limit, count): `count` functions servers (separate processes) sharing the stack's database."""
    started: list[FunctionsServer] = []

    def start(limit: int = LIMIT, count: int = 1) -> list[Api]:
        # X_FORWARDED_FOR_TRUSTED: these tests stand in for Google's front end (forwarded()).
        env = {**stack.env(), "GUEST_LIMIT_PER_HOUR": str(limit), "X_FORWARDED_FOR_TRUSTED": "true"}
        for n in range(count):
            started.append(FunctionsServer(free_port(), env, tmp_path / f"functions-{n}.log", threads=16).start())
        return [Api(server.url) for server in started[-count:]]

    yield start
    for server in started:
        server.stop()


def first_session(api: Api, address: str, forged: str | None = None, key: str | None = None):
    return api.post("create_session", {}, guest=key or new_guest_key(), headers=forwarded(address, forged))


def sequence_position(db) -> int:
    """How many numbers nextval has handed out since the test's reset."""
    last_value, called = rows(db, "SELECT last_value, is_called FROM visitor_number_seq")[0]
    return last_value if called else last_value - 1


def test_32_concurrent_first_sessions_from_one_address_give_exactly_the_limit(limited_servers, db, lines):
    """Two server processes share one window: 32 first sessions at once, half to each, give
    exactly 20 guests and 12 answers 429 with Retry-After; no number is taken by a refusal."""
    first, second = limited_servers(LIMIT, count=2)

    with ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(lambda n: first_session((first, second)[n % 2], "203.0.113.7"), range(32)))

    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201] * 20 + [429] * 12, [a.text for a in answers if a.status_code not in (201, 429)]
    for refused in (a for a in answers if a.status_code == 429):
        error = assert_error(refused, 429, "resource_exhausted")
        assert "sign in" in error["message"]
        assert 3500 <= int(refused.headers["Retry-After"]) <= 3600
    assert sequence_position(db) == 20  # visitor_number_seq advanced by exactly the created guests
    assert sorted(a.json()["visitorNumber"] for a in answers if a.status_code == 201) == list(range(1, 21))
    assert scalar(db, "SELECT count(*) FROM guests") == 20
    assert scalar(db, "SELECT count(*) FROM sessions") == 20
    (window,) = rows(db, "SELECT address_hash, cardinality(created_at) AS n, allowed FROM guest_limits")
    assert window.n == 20 and window.allowed is False
    assert b"203.0.113.7" not in bytes(window.address_hash)  # stored only as the keyed hash
    assert len(bytes(window.address_hash)) == 32


def test_another_address_is_not_affected_and_forged_entries_do_not_escape(limited_servers, db, stack):
    (api,) = limited_servers(3)
    for n in range(3):
        # A client that puts addresses of its own in X-Forwarded-For is still counted by the one
        # the front end appended.
        assert first_session(api, "198.51.100.1", forged=f"10.0.0.{n}").status_code == 201
    assert_error(first_session(api, "198.51.100.1"), 429, "resource_exhausted")
    assert_error(first_session(api, "198.51.100.1", forged="192.0.2.99"), 429, "resource_exhausted")
    assert_error(first_session(api, "198.51.100.1", forged="198.51.100.2, 192.0.2.5"), 429, "resource_exhausted")

    # Another address has its own window, also when a client names it on the left.
    assert first_session(api, "198.51.100.2").status_code == 201
    assert first_session(api, "2001:db8::1").status_code == 201
    assert first_session(api, "2001:0db8:0:0::1").status_code == 201  # the same address, spelled otherwise
    assert first_session(api, "2001:db8::ffff:1").status_code == 201  # another address of the same /64 ...
    assert_error(first_session(api, "2001:db8::2"), 429, "resource_exhausted")  # ... shares its window
    assert scalar(db, "SELECT count(*) FROM guest_limits") == 3

    key = stack.env()["GUEST_LIMIT_KEY"].encode()
    stored = {bytes(r.address_hash) for r in rows(db, "SELECT address_hash FROM guest_limits")}
    assert stored == {
        hmac.new(key, a.encode(), hashlib.sha256).digest() for a in ("198.51.100.1", "198.51.100.2", "2001:db8::/64")
    }


def test_returning_guests_retries_and_signed_in_users_are_not_limited(limited_servers, db, auth_emulator):
    (api,) = limited_servers(2)
    key, retry_id = new_guest_key(), str(uuid.uuid4())
    assert (
        api.post("create_session", {"sessionId": retry_id}, guest=key, headers=forwarded("192.0.2.1")).status_code
        == 201
    )
    assert first_session(api, "192.0.2.1").status_code == 201
    assert_error(first_session(api, "192.0.2.1"), 429, "resource_exhausted")
    before = sequence_position(db)

    for _ in range(5):  # the same guest again: later sessions, and a retry of its first
        assert first_session(api, "192.0.2.1", key=key).status_code == 201
    assert (
        api.post("create_session", {"sessionId": retry_id}, guest=key, headers=forwarded("192.0.2.1")).status_code
        == 200
    )
    for _ in range(3):  # new signed-in accounts take numbers but are not counted
        user = auth_emulator.new_user()
        assert api.post("create_session", {}, token=user.id_token, headers=forwarded("192.0.2.1")).status_code == 201
    assert sequence_position(db) == before + 3

    # A Firebase anonymous account's first session is a new visitor like a new guest key ...
    anonymous = auth_emulator.anonymous()
    assert_error(
        api.post("create_session", {}, token=anonymous.id_token, headers=forwarded("192.0.2.1")),
        429,
        "resource_exhausted",
    )
    assert scalar(db, "SELECT count(*) FROM users WHERE id = :u", u=anonymous.uid) == 0
    # ... and from another address it starts, and its later sessions are never counted.
    assert api.post("create_session", {}, token=anonymous.id_token, headers=forwarded("192.0.2.2")).status_code == 201
    assert api.post("create_session", {}, token=anonymous.id_token, headers=forwarded("192.0.2.1")).status_code == 201


def test_the_window_slides(limited_servers, db):
    """Time moves by rewriting the stored times (the window is an hour; the test does not wait one)."""
    (api,) = limited_servers(3)
    for _ in range(3):
        assert first_session(api, "192.0.2.50").status_code == 201
    refused = first_session(api, "192.0.2.50")
    assert_error(refused, 429, "resource_exhausted")

    # The oldest new guest was made 59 minutes 50 seconds ago: a slot frees in about 10 seconds.
    with db.begin() as conn:
        conn.exec_driver_sql("UPDATE guest_limits SET created_at[1] = now() - interval '3590 seconds'")
    refused = first_session(api, "192.0.2.50")
    assert_error(refused, 429, "resource_exhausted")
    assert 1 <= int(refused.headers["Retry-After"]) <= 11

    # An hour and a second ago: it has left the window, so one more new guest may come, and no second.
    with db.begin() as conn:
        conn.exec_driver_sql("UPDATE guest_limits SET created_at[1] = now() - interval '3601 seconds'")
    assert first_session(api, "192.0.2.50").status_code == 201
    assert_error(first_session(api, "192.0.2.50"), 429, "resource_exhausted")
    assert scalar(db, "SELECT cardinality(created_at) FROM guest_limits") == 3


def test_expired_windows_are_forgotten_by_the_next_new_guests(limited_servers, db):
    """The table keeps an address only for the hour it matters: each new guest deletes two
    expired windows of other addresses."""
    (api,) = limited_servers(5)
    for n in range(4):
        assert first_session(api, f"192.0.2.{100 + n}").status_code == 201
    with db.begin() as conn:
        conn.exec_driver_sql(
            "UPDATE guest_limits SET created_at = ARRAY[now() - interval '2 hours'], "
            "last_at = now() - interval '2 hours'"
        )
    assert first_session(api, "192.0.2.200").status_code == 201
    assert scalar(db, "SELECT count(*) FROM guest_limits") == 3  # 4 expired - 2 + the new one
    assert first_session(api, "192.0.2.201").status_code == 201
    assert scalar(db, "SELECT count(*) FROM guest_limits WHERE last_at < now() - interval '1 hour'") == 0


def test_without_a_key_the_limit_is_a_configuration_error_and_zero_turns_it_off(stack, db, tmp_path):
    env = {**stack.env(), "GUEST_LIMIT_PER_HOUR": "1"}
    env.pop("GUEST_LIMIT_KEY")
    server = FunctionsServer(free_port(), env, tmp_path / "nokey.log").start()
    try:
        assert_error(first_session(Api(server.url), "192.0.2.9"), 500, "internal")
        assert sequence_position(db) == 0
        assert "GUEST_LIMIT_KEY is not set" in (tmp_path / "nokey.log").read_text()
    finally:
        server.stop()
    off = FunctionsServer(free_port(), {**env, "GUEST_LIMIT_PER_HOUR": "0"}, tmp_path / "off.log").start()
    try:
        for _ in range(5):
            assert first_session(Api(off.url), "192.0.2.9").status_code == 201
        assert scalar(db, "SELECT count(*) FROM guest_limits") == 0
    finally:
        off.stop()


def test_x_forwarded_for_lines_sent_straight_to_a_function_are_not_its_address(api, db, stack):
    """Served with no front end (as `make dev` and the session's stack are), X-Forwarded-For holds only
    what the client wrote: two lines, joined by the server, put the client's choice rightmost. The
    address that counts is the one Google's front end would have appended: the peer of the socket."""
    import http.client
    from urllib.parse import urlsplit

    url = urlsplit(api.url("create_session"))
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    try:
        connection.putrequest("POST", url.path)
        connection.putheader("X-Forwarded-For", "198.51.100.7")
        connection.putheader("X-Forwarded-For", "203.0.113.9")
        connection.putheader("X-Guest-Key", new_guest_key())
        connection.putheader("Content-Type", "application/json")
        connection.putheader("Content-Length", "2")
        connection.endheaders(b"{}")
        answer = connection.getresponse()
        assert answer.status == 201, answer.read()
    finally:
        connection.close()

    key = stack.env()["GUEST_LIMIT_KEY"].encode()
    counted = {bytes(r.address_hash) for r in rows(db, "SELECT address_hash FROM guest_limits")}
    assert counted == {hmac.new(key, b"127.0.0.1", hashlib.sha256).digest()}
