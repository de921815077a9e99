"""Registration: the users row of a signed-up Firebase user, and the claim of
the guest that user was before signing up.

register() is one transaction. It upserts the users row from the ID token and,
given the guest's key, claims the guest: every session of the guest moves to
the user and takes the user's visitor number, and so do their responses. A user
without a number takes the guest's; a user with one keeps it, and the guest's
number is recorded in visitor_merges so that queries by it still resolve.

Locks are always taken in the same order - users row, guest row, sessions,
responses - which is also the order create_session, submit_response and the
backfill use, so these never deadlock with one another.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from shared.auth import Guest, User
from shared.db import statement, transaction
from shared.encodings import rfc3339
from shared.errors import Conflict, PermissionDenied, Unauthenticated
from shared.logs import get_logger
from shared.visitors import numbered_or_degraded

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
            "send the guest's key beside it as X-Guest-Key to keep the guest's data."
        )
    if user.anonymous:
        raise PermissionDenied(
            "An anonymous Firebase account cannot register; sign up (email, Google, ...) or link "
            "the anonymous account to a provider first."
        )
    return user


def register(engine: Engine, user: User, guest: Guest | None, display_name: str | None = None) -> Registered:
    """Create or update the user's record and claim the guest, in one transaction.

    `user` is one that require_registered accepted. Raises Conflict, changing
    nothing, if another user has claimed the guest.
    Calling it again claims nothing more (migrated_sessions 0).
    """
    # As create_session does: if numbering fails, the user is registered without
    # a number and gets one from its next session or `python -m shared.backfill`.
    return numbered_or_degraded(
        lambda numbered: _register(engine, user, guest, display_name, numbered),
        "registering the user", userId=user.uid,
    )


def _register(engine: Engine, user: User, guest: Guest | None, display_name: str | None,
              numbered: bool) -> Registered:
    with transaction(engine) as conn:
        row = conn.execute(
            statement("register_upsert_user"), {"user_id": user.uid, "email": user.email, "display_name": display_name}
        ).one()
        had_number = row.visitor_number
        claimed = _lock_guest(conn, guest, user) if guest is not None else None

        number = had_number
        if number is None:
            if claimed is not None and claimed.visitor_number is not None:
                number = conn.execute(statement("register_take_guest_number"),
                                      {"user_id": user.uid, "number": claimed.visitor_number}).scalar_one()
            elif numbered:
                number = conn.execute(statement("register_take_new_number"), {"user_id": user.uid}).scalar_one()

        moved = 0
        merged_from = None
        if claimed is not None:
            conn.execute(statement("register_claim_guest"), {"user_id": user.uid, "guest_id": claimed.id})
            moved = conn.execute(
                statement("register_move_sessions"), {"user_id": user.uid, "guest_id": claimed.id, "number": number}
            ).rowcount
            if had_number is not None and claimed.visitor_number not in (None, had_number):
                merged_from = claimed.visitor_number
                conn.execute(statement("register_record_merge"), {"from_number": merged_from, "to_number": had_number,
                                                  "user_id": user.uid})
        if had_number is None and number is not None:
            conn.execute(statement("register_number_own_sessions"), {"user_id": user.uid, "number": number})
        if claimed is not None or (had_number is None and number is not None):
            conn.execute(statement("register_renumber_responses"), {"user_id": user.uid})

    result = Registered(
        created=row.created, user_id=row.id, email=row.email, display_name=row.display_name,
        visitor_number=number, created_at=row.created_at, migrated=claimed is not None,
        migrated_sessions=moved, merged_from_visitor_number=merged_from,
    )
    log.info(
        "registered user",
        extra={"fields": {"userId": user.uid, "visitorNumber": number, "created": row.created,
                          "migratedSessions": moved, "mergedFromVisitorNumber": merged_from}},
    )
    return result


@dataclass(frozen=True)
class _ClaimableGuest:
    id: uuid.UUID
    visitor_number: int | None


def _lock_guest(conn: Connection, guest: Guest, user: User) -> _ClaimableGuest | None:
    """The guest to claim now, locked; None if there is nothing to move (a key never
    seen, now recorded as this user's; or a guest this user claimed already)."""
    for _attempt in range(3):
        row = conn.execute(statement("register_lock_guest"), {"key_hash": guest.key_hash}).first()
        if row is not None:
            break
        recorded = conn.execute(statement("register_claim_unseen_key"), {
            "guest_id": str(uuid.uuid4()), "key_hash": guest.key_hash, "user_id": user.uid}).first()
        if recorded is not None:
            return None  # the key is the user's from now on; it had nothing to move
        # A create_session made this guest meanwhile and has committed: lock it and claim it.
    else:
        # Made and erased again between each look: nothing stable to claim.
        raise Conflict("The guest was being changed by another request at the same time; try again.")
    if row.claimed_by == user.uid:
        return None  # claimed by an earlier call; every session moved then
    if row.claimed_by is not None:
        # Raising rolls back the users upsert too: a refused claim changes nothing.
        raise Conflict("This guest has already been claimed by another account.")
    return _ClaimableGuest(row.id, row.visitor_number)
