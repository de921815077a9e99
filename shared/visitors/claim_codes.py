"""Claim codes: bring a guest, or an anonymous account, to another device with a short
single-use code (docs/design/registration.md)."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from shared.core import config
from shared.core.db import single_statement, sqlstate, statement
from shared.core.encodings import rfc3339
from shared.core.errors import Conflict, GuestClaimed, InvalidArgument, NotFound, PermissionDenied, ResourceExhausted
from shared.core.logs import get_logger
from shared.web.auth import Caller, Guest, User

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

log = get_logger("claim_codes")

ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_LENGTH = 8
MAX_WRONG_CODES = 5
WRONG_CODE_WINDOW_SECONDS = 600

# What a person may type: the code in any case, with spaces or dashes between its characters.
_TYPED = re.compile(r"[\s-]+")
_CODE = re.compile(f"[{ALPHABET}]{{{CODE_LENGTH}}}")

WRONG_CODE = "This claim code is wrong, used or expired; make a new one on the other device."


@dataclass(frozen=True)
class ClaimCode:
    """A claim code as register receives it: only its hash leaves this module."""

    code_hash: bytes

    def __repr__(self) -> str:  # never print the hash of a live code in full
        return f"ClaimCode({self.code_hash.hex()[:8]}…)"


@dataclass(frozen=True)
class NewCode:
    code: str
    expires_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {"claimCode": self.code, "expiresAt": rfc3339(self.expires_at)}


def hash_code(code: str) -> bytes:
    return hashlib.sha256(code.encode("ascii")).digest()


def parse_code(typed: str) -> ClaimCode:
    """The code a person typed (any case, spaces and dashes allowed); 400 if it cannot be one.
    A malformed code is refused without counting as a try: it cannot be a guess."""
    code = _TYPED.sub("", typed).upper()
    if not _CODE.fullmatch(code):
        raise InvalidArgument(f"claimCode must be {CODE_LENGTH} characters of {ALPHABET}.")
    return ClaimCode(hash_code(code))


def new_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


def create_claim_code(engine: Engine, caller: Caller) -> NewCode:
    """A new code for the caller, a guest or an anonymous account, replacing its earlier one.

    PermissionDenied for a signed-in (non-anonymous) account, NotFound for a visitor
    with no record yet, GuestClaimed for one a signed-in account has claimed already.
    """
    if isinstance(caller, User) and not caller.anonymous:
        raise PermissionDenied(
            "A signed-in account needs no claim code: sign in to the same account on the other device. "
            "Claim codes are made by guests (X-Guest-Key) and anonymous accounts."
        )
    params: dict[str, Any]
    if isinstance(caller, Guest):
        name, params = "claim_codes/create_guest", {"key_hash": caller.key_hash}
    else:
        name, params = "claim_codes/create_user", {"user_id": caller.uid}
    ttl = config.claim_code_ttl_seconds()
    for _attempt in range(3):
        code = new_code()
        try:
            with single_statement(engine) as conn:
                row = conn.first(statement(name), {**params, "code_hash": hash_code(code), "ttl_seconds": ttl})
        except Exception as error:
            if sqlstate(error) == "23505":  # another visitor's live code has this hash: make another
                continue
            raise
        if row.claimed is None:
            raise NotFound("No visitor record yet: create a session first, then make a claim code.")
        if row.claimed:
            raise GuestClaimed("This visitor's data now belongs to a registered account; sign in to continue.")
        log.info("made a claim code", extra={"fields": {"ttlSeconds": ttl}})
        return NewCode(code, row.expires_at)
    raise Conflict("Could not make a unique claim code right now; try again.")


def count_try(engine: Engine, user: User) -> datetime:
    """Count one try of a claim code by `user` (committed at once); its time, for forgive().
    ResourceExhausted (429, Retry-After) once the account has MAX_WRONG_CODES recent wrong ones."""
    with single_statement(engine) as conn:
        row = conn.first(
            statement("claim_codes/try"),
            {"user_id": user.uid, "limit": MAX_WRONG_CODES, "window_seconds": WRONG_CODE_WINDOW_SECONDS},
        )
    if row.tried_at is None:
        log.warning("refused a claim code: too many wrong ones", extra={"fields": {"limit": MAX_WRONG_CODES}})
        raise ResourceExhausted(
            f"Too many wrong claim codes ({MAX_WRONG_CODES} in {WRONG_CODE_WINDOW_SECONDS // 60} minutes); "
            "wait and try again.",
            row.retry_after if row.retry_after is not None else WRONG_CODE_WINDOW_SECONDS,
        )
    return row.tried_at


def forgive(conn, user: User, tried_at: datetime) -> None:
    """Take back the try of a right code (in the claim's transaction, or on its own)."""
    conn.execute(statement("claim_codes/forgive"), {"user_id": user.uid, "tried_at": tried_at})
