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
from shared.db import sql, transaction
from shared.errors import Conflict, PermissionDenied, Unauthenticated
from shared.logs import get_logger
from shared.visitors import NEXT_NUMBER, numbered_or_degraded, rfc3339

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

log = get_logger("registration")

# (xmax = 0) is true for a row this statement inserted, false for one it updated.
# updated_at moves only when something changed, so a repeated call changes nothing.
_UPSERT_USER = """
    INSERT INTO users (id, email, display_name) VALUES (:user_id, :email, :display_name)
    ON CONFLICT (id) DO UPDATE SET
        email = EXCLUDED.email,
        display_name = COALESCE(EXCLUDED.display_name, users.display_name),
        updated_at = CASE
            WHEN (users.email, users.display_name)
                 IS DISTINCT FROM (EXCLUDED.email, COALESCE(EXCLUDED.display_name, users.display_name))
            THEN now() ELSE users.updated_at END
    RETURNING id, email, display_name, visitor_number, created_at, (xmax = 0) AS created
    """

# FOR UPDATE: create_session holds FOR SHARE on the guest row while it inserts
# a session. Waiting for this lock means every session the guest has started is
# committed and seen by the statements below; a create_session that comes later
# waits for the claim to commit and is refused with guest_claimed.
_LOCK_GUEST = "SELECT id, visitor_number, claimed_by FROM guests WHERE key_hash = :key_hash FOR UPDATE"

_GIVE_USER_NUMBER = {
    "guest": (
        "UPDATE users SET visitor_number = :number, updated_at = now() "
        "WHERE id = :user_id AND visitor_number IS NULL RETURNING visitor_number"
    ),
    "new": (
        f"UPDATE users SET visitor_number = {NEXT_NUMBER}, updated_at = now() "
        "WHERE id = :user_id AND visitor_number IS NULL RETURNING visitor_number"
    ),
}

_CLAIM_GUEST = "UPDATE guests SET claimed_by = :user_id, claimed_at = now() WHERE id = :guest_id"

# Row locks on every moved session: a submit_response that already holds one
# finishes first (and its response is renumbered below); one that comes later
# sees the new owner.
_MOVE_SESSIONS = """
    UPDATE sessions SET user_id = :user_id, visitor_number = CAST(:number AS bigint), updated_at = now()
    WHERE guest_id = :guest_id AND user_id IS NULL
    """

# The user's own sessions made while numbering was failing, once the user has a number.
_NUMBER_OWN_SESSIONS = """
    UPDATE sessions SET visitor_number = :number, updated_at = now()
    WHERE user_id = :user_id AND visitor_number IS NULL
    """

# A statement of its own, after the sessions moved: its snapshot then includes
# every response inserted by a submit_response that held a session's lock.
_RENUMBER_RESPONSES = """
    UPDATE responses r SET visitor_number = s.visitor_number
    FROM sessions s
    WHERE r.session_id = s.id AND s.user_id = :user_id
      AND r.visitor_number IS DISTINCT FROM s.visitor_number
    """

# A number reaches a merge once per claim; should a guest be claimed again (its
# user was deleted, which un-claims it), the newest merge is the one that holds.
_RECORD_MERGE = """
    INSERT INTO visitor_merges (from_number, to_number, user_id) VALUES (:from_number, :to_number, :user_id)
    ON CONFLICT (from_number) DO UPDATE
    SET to_number = EXCLUDED.to_number, user_id = EXCLUDED.user_id, merged_at = now()
    """


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

    Raises Conflict, changing nothing, if another user has claimed the guest.
    Calling it again claims nothing more (migrated_sessions 0).
    """
    user = require_registered(user)
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
            sql(_UPSERT_USER), {"user_id": user.uid, "email": user.email, "display_name": display_name}
        ).one()
        had_number = row.visitor_number
        claimed = _lock_guest(conn, guest, user) if guest is not None else None

        number = had_number
        if number is None:
            if claimed is not None and claimed.visitor_number is not None:
                number = _give_user_number(conn, "guest", user.uid, claimed.visitor_number)
            elif numbered:
                number = _give_user_number(conn, "new", user.uid)

        moved = 0
        merged_from = None
        if claimed is not None:
            conn.execute(sql(_CLAIM_GUEST), {"user_id": user.uid, "guest_id": claimed.id})
            moved = conn.execute(
                sql(_MOVE_SESSIONS), {"user_id": user.uid, "guest_id": claimed.id, "number": number}
            ).rowcount
            if had_number is not None and claimed.visitor_number not in (None, had_number):
                merged_from = claimed.visitor_number
                conn.execute(sql(_RECORD_MERGE), {"from_number": merged_from, "to_number": had_number,
                                                  "user_id": user.uid})
        if had_number is None and number is not None:
            conn.execute(sql(_NUMBER_OWN_SESSIONS), {"user_id": user.uid, "number": number})
        if claimed is not None or (had_number is None and number is not None):
            conn.execute(sql(_RENUMBER_RESPONSES), {"user_id": user.uid})

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
    """The guest to claim now, locked; None if there is none (never seen, or already this user's)."""
    row = conn.execute(sql(_LOCK_GUEST), {"key_hash": guest.key_hash}).first()
    if row is None:
        # A key that never made a session: nothing to claim, and no guest row is made for it.
        return None
    if row.claimed_by == user.uid:
        return None  # claimed by an earlier call; every session moved then
    if row.claimed_by is not None:
        # Raising rolls back the users upsert too: a refused claim changes nothing.
        raise Conflict("This guest has already been claimed by another account.")
    return _ClaimableGuest(row.id, row.visitor_number)


def _give_user_number(conn: Connection, source: str, user_id: str, number: int | None = None) -> int:
    return conn.execute(sql(_GIVE_USER_NUMBER[source]), {"user_id": user_id, "number": number}).scalar_one()
