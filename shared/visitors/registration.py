"""Registration: the users row of a signed-up Firebase user, and the claim of the visitor it
was before, in one transaction (docs/design/registration.md)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from shared.core.db import statement, transaction
from shared.core.encodings import rfc3339
from shared.core.errors import Conflict, GuestClaimed, InvalidArgument, PermissionDenied, Unauthenticated
from shared.core.logs import get_logger
from shared.visitors import claim_codes
from shared.visitors.claim_codes import ClaimCode
from shared.visitors.sessions import numbered_or_degraded
from shared.web.auth import Guest, User

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

log = get_logger("registration")


@dataclass(frozen=True)
class Registered:
    """What register did: the user as stored now, and what it claimed."""

    created: bool  # the users row is new
    user_id: str
    email: str | None
    display_name: str | None
    visitor_number: int | None
    created_at: datetime
    migrated: bool  # this call claimed a guest
    migrated_sessions: int
    merged_from_visitor_number: int | None

    def to_json(self) -> dict[str, Any]:
        return {
            "user": {
                "id": self.user_id,
                "email": self.email,
                "displayName": self.display_name,
                "visitorNumber": self.visitor_number,
                "createdAt": rfc3339(self.created_at),
            },
            "migrated": self.migrated,
            "migratedSessions": self.migrated_sessions,
            "mergedFromVisitorNumber": self.merged_from_visitor_number,
        }


def require_registered(user: User | None) -> User:
    """The caller of register must be a signed-up (non-anonymous) Firebase user."""
    if user is None:
        raise Unauthenticated(
            "register needs 'Authorization: Bearer <Firebase ID token>' of a signed-up user; "
            "send the guest's key beside it as X-Guest-Key (or X-Anonymous-Token, or a claimCode) "
            "to keep the guest's data."
        )
    if user.anonymous:
        raise PermissionDenied(
            "An anonymous Firebase account cannot register; sign up (email, Google, ...) or link "
            "the anonymous account to a provider first."
        )
    return user


# What register may claim: a guest (X-Guest-Key), an anonymous Firebase account
# (X-Anonymous-Token, its verified User) or the visitor a claim code names.
Claim = Guest | User | ClaimCode


def register(engine: Engine, user: User, claim: Claim | None = None, display_name: str | None = None) -> Registered:
    """Create or update the user's record and claim the visitor `claim` names, in one transaction.

    `user` is one that require_registered accepted. Raises Conflict, changing
    nothing, if another user has claimed that visitor; InvalidArgument for a wrong,
    used or expired claim code (the try is counted); ResourceExhausted after too
    many wrong codes. Calling it again claims nothing more (migrated_sessions 0).
    """
    tried_at = claim_codes.count_try(engine, user) if isinstance(claim, ClaimCode) else None
    try:
        # As create_session does: if numbering fails, the user is registered without
        # a number and gets one from its next session or `python -m shared.backfill`.
        return numbered_or_degraded(
            lambda numbered: _register(engine, user, claim, display_name, numbered, tried_at),
            "registering the user",
        )
    except Conflict:
        if tried_at is not None:  # the code was right; the claim was refused for another reason
            with transaction(engine) as conn:
                claim_codes.forgive(conn, user, tried_at)
        raise


def _register(
    engine: Engine, user: User, claim: Claim | None, display_name: str | None, numbered: bool, tried_at: datetime | None
) -> Registered:
    with transaction(engine) as conn:
        row = conn.execute(
            statement("registration/upsert_user"),
            {"user_id": user.uid, "email": user.email, "display_name": display_name},
        ).one()
        if row.claimed_by is not None:
            # This uid was an anonymous account that another account claimed; raising rolls the upsert back.
            raise GuestClaimed("This account's data was claimed by another account; sign in to that account.")
        had_number = row.visitor_number
        claimed = _lock_claimed(conn, claim, user, tried_at)

        if claimed is not None and claimed.anonymous:
            # Before the user may take its number (users.visitor_number is unique).
            conn.execute(statement("registration/claim_anonymous"), {"user_id": user.uid, "anonymous_id": claimed.id})
        number = had_number
        if number is None:
            if claimed is not None and claimed.visitor_number is not None:
                number = conn.execute(
                    statement("registration/take_guest_number"), {"user_id": user.uid, "number": claimed.visitor_number}
                ).scalar_one()
            elif numbered:
                number = conn.execute(statement("registration/take_new_number"), {"user_id": user.uid}).scalar_one()

        moved = 0
        merged_from = None
        if claimed is not None:
            if claimed.anonymous:
                moved = conn.execute(
                    statement("registration/move_anonymous_sessions"),
                    {"user_id": user.uid, "anonymous_id": claimed.id, "number": number},
                ).rowcount
            else:
                conn.execute(statement("registration/claim_guest"), {"user_id": user.uid, "guest_id": claimed.id})
                moved = conn.execute(
                    statement("registration/move_sessions"),
                    {"user_id": user.uid, "guest_id": claimed.id, "number": number},
                ).rowcount
            if had_number is not None and claimed.visitor_number not in (None, had_number):
                merged_from = claimed.visitor_number
                conn.execute(
                    statement("registration/record_merge"),
                    {"from_number": merged_from, "to_number": had_number, "user_id": user.uid},
                )
        if had_number is None and number is not None:
            conn.execute(statement("registration/number_own_sessions"), {"user_id": user.uid, "number": number})
        if claimed is not None or (had_number is None and number is not None):
            conn.execute(statement("registration/renumber_responses"), {"user_id": user.uid})
            conn.execute(statement("registration/renumber_uploads"), {"user_id": user.uid})

    result = Registered(
        created=row.created,
        user_id=row.id,
        email=row.email,
        display_name=row.display_name,
        visitor_number=number,
        created_at=row.created_at,
        migrated=claimed is not None,
        migrated_sessions=moved,
        merged_from_visitor_number=merged_from,
    )
    # No uid, email, key or code in the log: the visitor's number and what moved.
    log.info(
        "registered user",
        extra={
            "fields": {
                "visitorNumber": number,
                "created": row.created,
                "claimed": _kind(claim),
                "migratedSessions": moved,
                "mergedFromVisitorNumber": merged_from,
            }
        },
    )
    return result


def _kind(claim: Claim | None) -> str | None:
    if claim is None:
        return None
    return {Guest: "guest", User: "anonymous", ClaimCode: "claimCode"}[type(claim)]


@dataclass(frozen=True)
class _Claimable:
    """A visitor to claim now, locked: a guest (its id) or an anonymous account (its uid)."""

    id: uuid.UUID | str
    visitor_number: int | None
    anonymous: bool


def _lock_claimed(conn: Connection, claim: Claim | None, user: User, tried_at: datetime | None) -> _Claimable | None:
    """The visitor to claim, locked; None if there is nothing to move."""
    if claim is None:
        return None
    if isinstance(claim, Guest):
        return _lock_guest(conn, claim, user)
    if isinstance(claim, User):
        return _lock_anonymous(conn, claim.uid, user)
    return _lock_by_code(conn, claim, user, tried_at)


def _lock_guest(conn: Connection, guest: Guest, user: User) -> _Claimable | None:
    """The guest to claim now, locked; None if there is nothing to move (a key never
    seen, now recorded as this user's; or a guest this user claimed already)."""
    for _attempt in range(3):
        row = conn.execute(statement("registration/lock_guest"), {"key_hash": guest.key_hash}).first()
        if row is not None:
            break
        recorded = conn.execute(
            statement("registration/claim_unseen_key"),
            {"guest_id": str(uuid.uuid4()), "key_hash": guest.key_hash, "user_id": user.uid},
        ).first()
        if recorded is not None:
            return None  # the key is the user's from now on; it had nothing to move
        # A create_session made this guest meanwhile and has committed: lock it and claim it.
    else:
        # Made and erased again between each look: nothing stable to claim.
        raise Conflict("The guest was being changed by another request at the same time; try again.")
    return _claimable_guest(row, user)


def _claimable_guest(row, user: User) -> _Claimable | None:
    if row.claimed_by == user.uid:
        return None  # claimed by an earlier call; every session moved then
    if row.claimed_by is not None:
        # Raising rolls back the users upsert too: a refused claim changes nothing.
        raise Conflict("This guest has already been claimed by another account.")
    return _Claimable(row.id, row.visitor_number, anonymous=False)


def _lock_anonymous(conn: Connection, anonymous_id: str, user: User) -> _Claimable | None:
    """The anonymous account to claim now, locked; None if there is nothing to move (the
    user itself, linked since; an account that never made a session, now recorded as
    this user's; or one this user claimed already)."""
    if anonymous_id == user.uid:
        return None  # the anonymous account was linked to this sign-in: everything is in place
    for _attempt in range(3):
        row = conn.execute(statement("registration/lock_anonymous"), {"anonymous_id": anonymous_id}).first()
        if row is not None:
            break
        recorded = conn.execute(
            statement("registration/claim_unseen_anonymous"), {"anonymous_id": anonymous_id, "user_id": user.uid}
        ).first()
        if recorded is not None:
            return None
    else:
        raise Conflict("The anonymous account was being changed by another request at the same time; try again.")
    return _claimable_anonymous(row, user)


def _claimable_anonymous(row, user: User) -> _Claimable | None:
    if row.claimed_by == user.uid:
        return None
    if row.claimed_by is not None:
        raise Conflict("This anonymous account has already been claimed by another account.")
    if row.email is not None:
        # Linked to a provider since its token was issued: a signed-in account, not a guest.
        raise Conflict("This account is no longer anonymous; it cannot be claimed.")
    return _Claimable(row.id, row.visitor_number, anonymous=True)


def _lock_by_code(conn: Connection, code: ClaimCode, user: User, tried_at: datetime | None) -> _Claimable | None:
    """The visitor a claim code names, locked, and the code used; InvalidArgument for a
    wrong, used or expired code. The visitor's row is locked before the code's (the
    order create_claim_code takes them in), then the code is checked under its lock."""
    found = conn.execute(statement("registration/claim_code_find"), {"code_hash": code.code_hash}).first()
    if found is None:
        raise InvalidArgument(claim_codes.WRONG_CODE)
    if found.guest_id is not None:
        visitor = conn.execute(statement("registration/lock_guest_by_id"), {"guest_id": str(found.guest_id)}).first()
    elif found.user_id == user.uid:
        visitor = None  # the user's own code, made while it was anonymous: nothing to move
    else:
        visitor = conn.execute(statement("registration/lock_anonymous"), {"anonymous_id": found.user_id}).first()
    locked = conn.execute(statement("registration/claim_code_lock"), {"code_hash": code.code_hash}).first()
    if locked is None or (locked.guest_id, locked.user_id) != (found.guest_id, found.user_id):
        raise InvalidArgument(claim_codes.WRONG_CODE)  # replaced by a newer code meanwhile
    assert tried_at is not None
    if locked.used_by is not None:
        if locked.used_by != user.uid:
            raise InvalidArgument(claim_codes.WRONG_CODE)
        claim_codes.forgive(conn, user, tried_at)
        return None  # this user redeemed it before: a repeat is harmless
    if not locked.live:
        raise InvalidArgument(claim_codes.WRONG_CODE)
    conn.execute(statement("registration/claim_code_use"), {"code_hash": code.code_hash, "user_id": user.uid})
    claim_codes.forgive(conn, user, tried_at)
    if visitor is None:
        return None
    if found.guest_id is not None:
        return _claimable_guest(visitor, user)
    return _claimable_anonymous(visitor, user)
