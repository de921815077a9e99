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

from shared.core.db import RaceLost, rerun_if_race_lost, single_statement, statement
from shared.core.encodings import rfc3339
from shared.core.errors import Conflict, GuestClaimed, NotFound, PermissionDenied
from shared.core.logs import get_logger
from shared.visitors.sessions import ANONYMOUS_CLAIMED
from shared.web.auth import Caller, Guest
from shared.web.limits import encode_data

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from shared.web.models import NewResponse

log = get_logger("responses")


@dataclass(frozen=True)
class StoredResponse:
    """A response as stored: what submit_response answers."""

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


def submit_response(engine: Engine, caller: Caller, new_response: NewResponse) -> tuple[bool, StoredResponse]:
    """Store a response in one of the caller's sessions.

    Returns (created, response): created is False for a retry of a responseId
    already stored in this session (nothing new is stored). Raises NotFound for
    an unknown session, PermissionDenied for someone else's, Conflict for a
    responseId already used in another session, GuestClaimed for an anonymous
    account that a signed-in account has claimed.
    """
    params: dict[str, Any] = {
        "session_id": str(new_response.sessionId),
        "response_id": str(new_response.responseId or uuid.uuid4()),
        "level": new_response.level,
        "data": encode_data(new_response.data),
    }
    if isinstance(caller, Guest):
        name = "responses/submit_response_guest"
        params["key_hash"] = caller.key_hash
    else:
        name = "responses/submit_response_user"
        params["user_id"] = caller.uid
    return rerun_if_race_lost(
        lambda: _run_submit(engine, name, params),
        gave_up=Conflict("This responseId was being stored by another request at the same time; try again."),
    )


def _run_submit(engine: Engine, name: str, params: dict) -> tuple[bool, StoredResponse]:
    # One statement, atomic by itself; every refusal below is decided on rows it
    # did not write, so it needs no transaction to roll back.
    with single_statement(engine) as conn:
        row = conn.first(statement(name), params)
    if row is None:
        raise RaceLost()
    if row.outcome == "missing":
        raise NotFound("No session with this sessionId; create one with create_session first.")
    if row.outcome == "claimed":
        raise GuestClaimed(ANONYMOUS_CLAIMED)
    if row.outcome == "denied":
        raise PermissionDenied("This session belongs to another visitor.")
    response = StoredResponse(row.id, row.session_id, row.visitor_number, row.level, row.created_at)
    if str(response.session_id) != params["session_id"]:
        raise Conflict("This responseId is already in use in another session; send a new one (or none).")
    if row.outcome == "created":
        log.info(
            "stored response",
            extra={
                "fields": {
                    "responseId": str(response.response_id),
                    "sessionId": str(response.session_id),
                    "visitorNumber": response.visitor_number,
                }
            },
        )
    return row.outcome == "created", response
