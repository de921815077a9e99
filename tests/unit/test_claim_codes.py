"""Claim codes without servers (SPEC §13): what a code looks like, how a typed one is read,
its setting, and the 429 it can end in."""

import hashlib
from collections import Counter

import pytest

from shared.core import config
from shared.core.config import ConfigError
from shared.core.errors import InvalidArgument, ResourceExhausted
from shared.visitors import claim_codes


def test_a_new_code_is_eight_characters_without_look_alikes():
    codes = [claim_codes.new_code() for _ in range(2000)]
    assert all(len(code) == 8 and set(code) <= set(claim_codes.ALPHABET) for code in codes)
    assert not set("01ILO") & set(claim_codes.ALPHABET) and len(claim_codes.ALPHABET) == 31
    assert len(set(codes)) == len(codes)
    # Every character of the alphabet is used, none far more than the others (secrets.choice).
    counts = Counter("".join(codes))
    assert set(counts) == set(claim_codes.ALPHABET)
    assert max(counts.values()) < 2 * min(counts.values())


@pytest.mark.parametrize("typed", ["K7Q4XH2M", "k7q4xh2m", "K7Q4-XH2M", " k7q4 xh2m ", "K7-Q4-XH-2M"])
def test_a_typed_code_is_read_in_any_case_with_spaces_and_dashes(typed):
    assert claim_codes.parse_code(typed).code_hash == hashlib.sha256(b"K7Q4XH2M").digest()


@pytest.mark.parametrize("typed", ["", "K7Q4XH2", "K7Q4XH2MM", "K7Q4XH2O", "K7Q4XH21", "K7Q4XH2é", "K7Q4_XH2M"])
def test_anything_else_is_refused_as_not_a_code(typed):
    with pytest.raises(InvalidArgument, match="8 characters"):
        claim_codes.parse_code(typed)


def test_the_code_never_shows_in_its_repr():
    code = claim_codes.parse_code("K7Q4XH2M")
    assert "K7Q4XH2M" not in repr(code) and code.code_hash.hex() not in repr(code)


def test_the_ttl_setting_defaults_to_ten_minutes_and_names_itself_when_wrong(monkeypatch):
    monkeypatch.delenv("CLAIM_CODE_TTL_SECONDS", raising=False)
    assert config.claim_code_ttl_seconds() == 600
    monkeypatch.setenv("CLAIM_CODE_TTL_SECONDS", "30")
    assert config.claim_code_ttl_seconds() == 30
    for wrong in ("ten", "0"):
        monkeypatch.setenv("CLAIM_CODE_TTL_SECONDS", wrong)
        with pytest.raises(ConfigError, match="CLAIM_CODE_TTL_SECONDS"):
            config.claim_code_ttl_seconds()
    assert any("CLAIM_CODE_TTL_SECONDS" in line for line in config.check({"CLAIM_CODE_TTL_SECONDS": "x"}))


def test_too_many_tries_is_429_with_a_retry_after_of_at_least_a_second():
    error = ResourceExhausted("Too many wrong claim codes", 0)
    assert (error.status, error.code, error.headers()) == (429, "resource_exhausted", {"Retry-After": "1"})
    assert ResourceExhausted("x", 42.2).headers() == {"Retry-After": "42"}
