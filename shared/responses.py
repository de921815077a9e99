"""Responses: what a visitor answers within one of its sessions (submit_response).

Only the session's owner may write: the user whose id is on the session, or the
guest whose session it is while no user has claimed it. The response carries
the session's visitor number. Submitting is one SQL statement: lock the session,
check the owner, insert the response and report a retry, in one round trip.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from shared.auth import Caller, Guest
from shared.db import single_statement, sql
from shared.errors import Conflict, NotFound, PermissionDenied
from shared.logs import get_logger
from shared.models import NewResponse, encode_data
from shared.visitors import rfc3339

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

log = get_logger("responses")

_RESPONSE_COLUMNS = "id, session_id, visitor_number, level, created_at"

# FOR SHARE on the session: register (and the backfill) update the session row
# before they renumber its responses in a later statement. A response is thus
# either inserted before the claim (and renumbered by it) or it waits, sees the
# session's new owner and number, and is refused or numbered accordingly. The
# owner is judged on the locked (newest) version of the row.
#
# Exactly one row comes back, with an outcome:
#   missing   - no such session;
#   denied    - the session is not the caller's;
#   created   - the response is new;
#   exists    - a response with this id was there before (a retry, or another
#               session's id; the caller compares session ids).
# No row at all: the same responseId was being inserted by a request that
# committed after this statement began; running it again finds that response.
_SUBMIT_SQL = f"""
WITH target AS (
    SELECT id, visitor_number, user_id, guest_id
    FROM sessions WHERE id = CAST(:session_id AS uuid)
    FOR SHARE
), owned AS (
    SELECT id, visitor_number FROM target WHERE {{owner_condition}}
), inserted AS (
    INSERT INTO responses (id, session_id, visitor_number, level, data)
    SELECT CAST(:response_id AS uuid), id, visitor_number, CAST(:level AS integer), CAST(:data AS jsonb)
    FROM owned
    ON CONFLICT (id) DO NOTHING
    RETURNING {_RESPONSE_COLUMNS}
)
SELECT 'created' AS outcome, {_RESPONSE_COLUMNS} FROM inserted
UNION ALL
SELECT 'exists', r.id, r.session_id, r.visitor_number, r.level, r.created_at
FROM responses r
WHERE r.id = CAST(:response_id AS uuid) AND EXISTS (SELECT 1 FROM owned)
  AND NOT EXISTS (SELECT 1 FROM inserted)
UNION ALL
SELECT 'denied', NULL, NULL, NULL, NULL, NULL FROM target WHERE NOT EXISTS (SELECT 1 FROM owned)
UNION ALL
SELECT 'missing', NULL, NULL, NULL, NULL, NULL WHERE NOT EXISTS (SELECT 1 FROM target)
"""

_STATEMENTS = {
    # A user owns the sessions that carry its id (its own and the guests' it claimed).
    "user": _SUBMIT_SQL.format(owner_condition="user_id = :user_id"),
    # A guest owns its sessions until a user claims it (register sets user_id on
    # every one of them in the same transaction as claimed_by).
    "guest": _SUBMIT_SQL.format(owner_condition=(
        "user_id IS NULL AND guest_id = "
        "(SELECT g.id FROM guests g WHERE g.key_hash = :key_hash AND g.claimed_by IS NULL)"
    )),
}


class _Retry(Exception):
    """The same responseId was being inserted at the same moment; run the statement again."""


@dataclass(frozen=True)
class Response:
    response_id: uuid.UUID
    session_id: uuid.UUID
    visitor_number: int | None
    level: int | None
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "responseId": str(self.response_id),
            "sessionId": str(self.session_id),
            "visitorNumber": self.visitor_number,
            "level": self.level,
            "createdAt": rfc3339(self.created_at),
        }


def submit_response(engine: Engine, caller: Caller, request: NewResponse) -> tuple[bool, Response]:
    """Store a response in one of the caller's sessions.

    Returns (created, response): created is False for a retry of a responseId
    already stored in this session (nothing new is stored). Raises NotFound for
    an unknown session, PermissionDenied for someone else's, Conflict for a
    responseId already used in another session.
    """
    params = {
        "session_id": str(request.sessionId),
        "response_id": str(request.responseId or uuid.uuid4()),
        "level": request.level,
        "data": encode_data(request.data),
    }
    if isinstance(caller, Guest):
        statement = _STATEMENTS["guest"]
        params["key_hash"] = caller.key_hash
    else:
        statement = _STATEMENTS["user"]
        params["user_id"] = caller.uid

    for _attempt in range(3):
        try:
            return _run_submit(engine, statement, params)
        except _Retry:
            continue
    raise Conflict("This responseId was being stored by another request at the same time; try again.")


def _run_submit(engine: Engine, statement, params: dict) -> tuple[bool, Response]:
    # One statement, atomic by itself; every refusal below is decided on rows it
    # did not write, so it needs no transaction to roll back.
    with single_statement(engine) as conn:
        row = conn.execute(sql(statement), params).first()
    if row is None:
        raise _Retry()
    if row.outcome == "missing":
        raise NotFound("No session with this sessionId; create one with create_session first.")
    if row.outcome == "denied":
        raise PermissionDenied("This session belongs to another visitor.")
    response = Response(row.id, row.session_id, row.visitor_number, row.level, row.created_at)
    if str(response.session_id) != params["session_id"]:
        raise Conflict("This responseId is already in use in another session; send a new one (or none).")
    if row.outcome == "created":
        log.info(
            "stored response",
            extra={"fields": {"responseId": str(response.response_id), "sessionId": str(response.session_id),
                              "visitorNumber": response.visitor_number}},
        )
    return row.outcome == "created", response
