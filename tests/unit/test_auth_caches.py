"""shared.web.auth's two caches: RevocationCache, what the revocation check of ID tokens reads, kept
per uid for a while (its HTTP behaviour: tests/security/test_revocation_window.py); and
VerifiedTokens, the claims of tokens already verified, until they expire."""

from __future__ import annotations

import threading

import pytest

from shared.web.auth import AccountState, RevocationCache, VerifiedTokens

ACTIVE = AccountState(disabled=False, tokens_valid_after_ms=0)
REVOKED = AccountState(disabled=False, tokens_valid_after_ms=2_000_000_000_000)


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Reads:
    """The reads of users' records the cache asked for, answering with `states` in turn."""

    def __init__(self, *states):
        self.states = list(states)
        self.uids: list[str] = []

    def of(self, uid: str):
        def read() -> AccountState:
            self.uids.append(uid)
            state = self.states.pop(0)
            if isinstance(state, Exception):
                raise state
            return state

        return read


def test_a_record_is_kept_for_max_age_seconds_of_its_clock():
    clock, reads = Clock(), Reads(ACTIVE, REVOKED)
    cache = RevocationCache(clock=clock)
    assert cache.get("ada", 300, reads.of("ada")) is ACTIVE
    clock.now = 299.9
    assert cache.get("ada", 300, reads.of("ada")) is ACTIVE
    clock.now = 300
    assert cache.get("ada", 300, reads.of("ada")) is REVOKED
    assert reads.uids == ["ada", "ada"]


def test_max_age_0_reads_every_time_and_keeps_what_it_read_for_the_others():
    reads = Reads(ACTIVE, REVOKED)
    cache = RevocationCache(clock=Clock())
    cache.get("ada", 0, reads.of("ada"))
    assert cache.get("ada", 0, reads.of("ada")) is REVOKED
    assert cache.get("ada", 300, reads.of("ada")) is REVOKED  # a fresh read refreshes what is kept
    assert reads.uids == ["ada", "ada"]


def test_a_failed_read_is_never_kept():
    reads = Reads(LookupError("user not found"), ACTIVE)
    cache = RevocationCache(clock=Clock())
    with pytest.raises(LookupError):
        cache.get("ada", 300, reads.of("ada"))
    assert cache.get("ada", 300, reads.of("ada")) is ACTIVE
    assert reads.uids == ["ada", "ada"]


def test_at_most_size_uids_are_kept_the_least_recently_used_forgotten_first():
    reads = Reads(*[ACTIVE] * 5)
    cache = RevocationCache(size=2, clock=Clock())
    for uid in ("ada", "bob", "ada", "cy", "ada", "bob"):
        cache.get(uid, 300, reads.of(uid))
    # cy pushed out bob (ada had been used since); bob, read again, pushed out cy.
    assert reads.uids == ["ada", "bob", "cy", "bob"]


def test_concurrent_misses_of_one_uid_make_one_read():
    release = threading.Event()
    reads: list[str] = []

    def slow_read() -> AccountState:
        reads.append("ada")
        release.wait(5)
        return ACTIVE

    cache = RevocationCache(clock=Clock())
    results: list[AccountState] = []
    threads = [threading.Thread(target=lambda: results.append(cache.get("ada", 300, slow_read))) for _ in range(8)]
    for thread in threads:
        thread.start()
    release.set()
    for thread in threads:
        thread.join(5)
    assert results == [ACTIVE] * 8
    assert reads == ["ada"]


# --- VerifiedTokens ---


def test_a_verified_token_is_kept_until_its_exp_and_only_that_exact_token():
    clock = Clock()
    tokens = VerifiedTokens(clock=clock)
    claims = {"uid": "ada", "iat": 0, "exp": 3600}
    tokens.keep("header.payload.signature", claims)
    assert tokens.get("header.payload.signature") is claims
    assert tokens.get("header.payload.signaturE") is None  # another signature: verified afresh
    clock.now = 3599.9
    assert tokens.get("header.payload.signature") is claims
    clock.now = 3600
    assert tokens.get("header.payload.signature") is None
    clock.now = 0
    assert tokens.get("header.payload.signature") is None  # forgotten once expired


def test_at_most_size_verified_tokens_are_kept():
    tokens = VerifiedTokens(size=2, clock=Clock())
    for token in ("a", "b", "a", "c"):
        tokens.keep(token, {"exp": 10})
    assert [tokens.get(token) is not None for token in ("a", "b", "c")] == [True, False, True]
