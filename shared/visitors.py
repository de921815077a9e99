"""Visitors and their sessions: numbering, create_session and get_visitor.

A visitor is a guest (known by the hash of its key) or a registered user. Each
gets one number from visitor_number_seq on its first session and keeps it.
Creating a session is one SQL statement: find-or-create the visitor, number it
if it has no number, insert the session, and report a retry of an existing
session. Being one statement, it runs without BEGIN/COMMIT around it
(db.single_statement): PostgreSQL makes it atomic by itself.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from shared.auth import Caller, Guest, User
from shared.db import describe, single_statement, sql, sqlstate
from shared.errors import Conflict, GuestClaimed, NotFound
from shared.logs import get_logger
from shared.models import NewSession

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

log = get_logger("visitors")

T = TypeVar("T")

NEXT_NUMBER = "nextval('visitor_number_seq')"
NO_NUMBER = "NULL::bigint"

# Errors of nextval itself: the sequence is exhausted, missing or not permitted.
# The session is then created without a number (SPEC §3, graceful degradation).
NUMBERING_SQLSTATES = {"2200H", "42P01", "42501"}

_SESSION_COLUMNS = "id, visitor_number, user_id, guest_id, experiment_id, created_at"

# The last part of both statements: insert the session for `visitor` unless the
# visitor is a claimed guest, and say what happened:
#   created - the session is new;
#   exists  - a session with this id was there before (a retry, or someone else's);
#   claimed - the guest has been claimed by a registered user.
_INSERT_SESSION = f"""
, inserted AS (
    INSERT INTO sessions (id, visitor_number, user_id, guest_id, experiment_id, metadata)
    SELECT CAST(:session_id AS uuid), visitor_number, {{user_column}}, {{guest_column}},
           :experiment_id, CAST(:metadata AS jsonb)
    FROM visitor WHERE NOT claimed
    ON CONFLICT (id) DO NOTHING
    RETURNING {_SESSION_COLUMNS}
)
SELECT 'created' AS outcome, {_SESSION_COLUMNS}, NULL::uuid AS visitor_guest_id FROM inserted
UNION ALL
SELECT 'claimed', NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM visitor WHERE claimed
UNION ALL
SELECT 'exists', s.id, s.visitor_number, s.user_id, s.guest_id, s.experiment_id, s.created_at,
       (SELECT {{visitor_guest_id}} FROM visitor)
FROM sessions s
WHERE s.id = CAST(:session_id AS uuid) AND NOT EXISTS (SELECT 1 FROM inserted)
"""

# FOR SHARE on the guest row: register takes it FOR UPDATE before moving the
# guest's sessions, so a session is either inserted before the claim (and moved
# by it) or sees the claim and is refused. No session is left behind.
#
# `taken`: a request naming a sessionId that exists already is a retry or a
# conflict, and creates or numbers no visitor: a refused request changes nothing.
_GUEST_SESSION_SQL = """
WITH taken AS (
    SELECT 1 FROM sessions WHERE id = CAST(:session_id AS uuid)
), found AS (
    SELECT id, visitor_number, claimed_by IS NOT NULL AS claimed
    FROM guests WHERE key_hash = :key_hash FOR SHARE
), created AS (
    INSERT INTO guests (id, key_hash, visitor_number)
    SELECT CAST(:new_guest_id AS uuid), :key_hash, {number}
    WHERE NOT EXISTS (SELECT 1 FROM found) AND NOT EXISTS (SELECT 1 FROM taken)
    ON CONFLICT (key_hash) DO NOTHING
    RETURNING id, visitor_number, false AS claimed
), numbered AS (
    UPDATE guests SET visitor_number = {number}
    WHERE key_hash = :key_hash AND visitor_number IS NULL AND claimed_by IS NULL
      AND EXISTS (SELECT 1 FROM found) AND NOT EXISTS (SELECT 1 FROM taken)
    RETURNING id, visitor_number, false AS claimed
), visitor AS (
    SELECT * FROM numbered
    UNION ALL SELECT * FROM created
    UNION ALL SELECT * FROM found WHERE NOT EXISTS (SELECT 1 FROM numbered)
)
""" + _INSERT_SESSION.format(user_column="NULL", guest_column="id", visitor_guest_id="id")

# FOR SHARE on the user row: register may give the user a number at the same
# moment; the session waits for it and takes that number.
_USER_SESSION_SQL = """
WITH taken AS (
    SELECT 1 FROM sessions WHERE id = CAST(:session_id AS uuid)
), found AS (
    SELECT id, visitor_number, false AS claimed FROM users WHERE id = :user_id FOR SHARE
), created AS (
    INSERT INTO users (id, email, visitor_number)
    SELECT :user_id, :email, {number}
    WHERE NOT EXISTS (SELECT 1 FROM found) AND NOT EXISTS (SELECT 1 FROM taken)
    ON CONFLICT (id) DO NOTHING
    RETURNING id, visitor_number, false AS claimed
), numbered AS (
    UPDATE users SET visitor_number = {number}, updated_at = now()
    WHERE id = :user_id AND visitor_number IS NULL
      AND EXISTS (SELECT 1 FROM found) AND NOT EXISTS (SELECT 1 FROM taken)
    RETURNING id, visitor_number, false AS claimed
), visitor AS (
    SELECT * FROM numbered
    UNION ALL SELECT * FROM created
    UNION ALL SELECT * FROM found WHERE NOT EXISTS (SELECT 1 FROM numbered)
)
""" + _INSERT_SESSION.format(user_column="id", guest_column="NULL::uuid", visitor_guest_id="NULL::uuid")

_STATEMENTS = {
    (Guest, True): _GUEST_SESSION_SQL.format(number=NEXT_NUMBER),
    (Guest, False): _GUEST_SESSION_SQL.format(number=NO_NUMBER),
    (User, True): _USER_SESSION_SQL.format(number=NEXT_NUMBER),
    (User, False): _USER_SESSION_SQL.format(number=NO_NUMBER),
}
# A new or returning guest's session, numbered: what bench/ measures on the server.
GUEST_SESSION_SQL = _STATEMENTS[(Guest, True)]


class _Retry(Exception):
    """Two first requests of one new visitor raced; run the statement again."""


@dataclass(frozen=True)
class Session:
    session_id: uuid.UUID
    visitor_number: int | None
    user_id: str | None
    guest_id: uuid.UUID | None
    experiment_id: str | None
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "sessionId": str(self.session_id),
            "visitorNumber": self.visitor_number,
            "userId": self.user_id,
            "guestId": str(self.guest_id) if self.guest_id else None,
            "experimentId": self.experiment_id,
            "createdAt": rfc3339(self.created_at),
        }


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def create_session(engine: Engine, caller: Caller, request: NewSession) -> tuple[bool, Session]:
    """Create the caller's session (and the caller, and its number, on first sight).

    Returns (created, session): created is False for a retry of the caller's own
    session id. Raises Conflict for someone else's id, GuestClaimed for a guest
    that a registered user has claimed.
    """
    params = {
        "session_id": str(request.sessionId or uuid.uuid4()),
        "experiment_id": request.experimentId,
        "metadata": json.dumps(request.metadata or {}, ensure_ascii=False),
    }
    if isinstance(caller, Guest):
        params.update(key_hash=caller.key_hash, new_guest_id=str(uuid.uuid4()))
    else:
        params.update(user_id=caller.uid, email=caller.email)

    for _attempt in range(3):
        try:
            return numbered_or_degraded(
                lambda numbered: _run_create(engine, caller, params, numbered),
                "creating the session", sessionId=params["session_id"],
            )
        except _Retry:
            continue
    raise Conflict("The visitor was being created by another request at the same time; try again.")


def numbered_or_degraded(run: Callable[[bool], T], doing: str, **fields) -> T:
    """run(True); if nextval itself fails, log a warning and run(False), the
    same work with visitor number NULL (SPEC §3, graceful degradation)."""
    try:
        return run(True)
    except Exception as error:
        if sqlstate(error) not in NUMBERING_SQLSTATES:
            raise
        log.warning(
            "visitor numbering failed (%s); %s without a number, "
            "run `python -m shared.backfill` once numbering works again",
            describe(error), doing,
            extra={"fields": {"sqlstate": sqlstate(error), **fields}},
        )
        return run(False)


def _run_create(engine: Engine, caller: Caller, params: dict, numbered: bool) -> tuple[bool, Session]:
    statement = _STATEMENTS[(type(caller), numbered)]
    with single_statement(engine) as conn:
        rows = conn.execute(sql(statement), params).all()
    if not rows:
        raise _Retry()
    row = rows[0]
    if row.outcome == "claimed":
        raise GuestClaimed("This guest's data now belongs to a registered account; sign in to continue.")
    session = Session(row.id, row.visitor_number, row.user_id, row.guest_id, row.experiment_id, row.created_at)
    if row.outcome == "created":
        log.info(
            "created session",
            extra={"fields": {"sessionId": str(session.session_id), "visitorNumber": session.visitor_number}},
        )
        return True, session
    if _owned_by(session, caller, row.visitor_guest_id):
        return False, session
    # Someone else's session id. The statement wrote nothing (see `taken`).
    raise Conflict("This sessionId is already in use; send a new one (or none).")


def _owned_by(session: Session, caller: Caller, caller_guest_id) -> bool:
    if isinstance(caller, User):
        return session.user_id == caller.uid
    return session.user_id is None and caller_guest_id is not None and session.guest_id == caller_guest_id


def get_visitor(engine: Engine, caller: Caller) -> dict[str, Any]:
    """The caller's number, ids and sessions (newest first, with response counts).

    Reads only; under READ COMMITTED each statement sees its own snapshot inside
    a transaction or not, so none is opened."""
    with single_statement(engine) as conn:
        if isinstance(caller, User):
            row = conn.execute(
                sql("SELECT id, visitor_number FROM users WHERE id = :user_id"), {"user_id": caller.uid}
            ).first()
            if row is None:
                raise NotFound("No visitor record yet: create a session first.")
            visitor = {"visitorNumber": row.visitor_number, "userId": row.id, "guestId": None}
            sessions = _sessions(conn, "s.user_id = :owner", row.id)
        else:
            row = conn.execute(
                sql("SELECT id, visitor_number, claimed_by FROM guests WHERE key_hash = :key_hash"),
                {"key_hash": caller.key_hash},
            ).first()
            if row is None:
                raise NotFound("No visitor record yet: create a session first.")
            if row.claimed_by is not None:
                raise GuestClaimed("This guest's data now belongs to a registered account; sign in to see it.")
            visitor = {"visitorNumber": row.visitor_number, "userId": None, "guestId": str(row.id)}
            sessions = _sessions(conn, "s.guest_id = :owner AND s.user_id IS NULL", row.id)
    visitor["sessions"] = sessions
    return visitor


def _sessions(conn: Connection, owner_condition: str, owner) -> list[dict[str, Any]]:
    rows = conn.execute(
        sql(
            f"""
            SELECT s.id, s.experiment_id, s.created_at,
                   (SELECT count(*) FROM responses r WHERE r.session_id = s.id) AS response_count
            FROM sessions s
            WHERE {owner_condition}
            ORDER BY s.created_at DESC, s.id
            """
        ),
        {"owner": owner},
    ).all()
    return [
        {
            "sessionId": str(r.id),
            "experimentId": r.experiment_id,
            "createdAt": rfc3339(r.created_at),
            "responseCount": r.response_count,
        }
        for r in rows
    ]
