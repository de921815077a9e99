"""Responses: what a visitor answers within one of its sessions (submit_response, one response
or a batch of them, SPEC §14.6).

Only the session's owner may write: the user whose id is on the session, or the guest whose
session it is while no user has claimed it, and only until the session is completed. A response
carries the session's visitor number; a session's responses keep the order they were stored in.
Submitting is one SQL statement: lock the session, check the owner, insert the responses and
report retries, in one round trip, all or nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from shared.core.db import RaceLost, rerun_if_race_lost, single_statement, sqlstate, statement
from shared.core.encodings import rfc3339
from shared.core.errors import ANONYMOUS_CLAIMED, Conflict, GuestClaimed, InvalidArgument, NotFound, PermissionDenied
from shared.core.logs import get_logger
from shared.web.auth import Caller, Guest
from shared.web.limits import encode_data

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlalchemy.engine import Engine

    from shared.web.models import NewResponse, NewResponses, ResponseItem

log = get_logger("responses")

# PostgreSQL's SQLSTATE of a duplicate key: a responseId that another request stored meanwhile.
UNIQUE_VIOLATION = "23505"


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
    responseId already used in another session or a new response to a completed
    session, GuestClaimed for an anonymous account that a signed-in account has
    claimed.
    """
    item = {
        "responseId": str(new_response.responseId or uuid.uuid4()),
        "level": new_response.level,
        "data": new_response.data,
    }
    created, (response,) = _submit(engine, caller, new_response.sessionId, [item], batch=False)
    return created, response


def submit_responses(engine: Engine, caller: Caller, batch: NewResponses) -> tuple[bool, list[StoredResponse]]:
    """Store a batch of responses in one of the caller's sessions, all or none, in list order.

    Returns (created, responses), one per item in the batch's order: created is False when
    every item was a retry (nothing new is stored). Raises as submit_response does, and
    InvalidArgument for a responseId given twice; an error about one item carries its
    `index` (its position in the list, from 0).
    """
    return _submit(engine, caller, batch.sessionId, _items(batch.responses), batch=True)


def _items(responses: Sequence[ResponseItem]) -> list[dict[str, Any]]:
    items, seen = [], set()
    for index, item in enumerate(responses):
        if item.responseId in seen:
            raise InvalidArgument(
                f"responses[{index}]: this responseId is given earlier in the batch; each response needs its own.",
                index=index,
            )
        seen.add(item.responseId)
        items.append({"responseId": str(item.responseId), "level": item.level, "data": item.data})
    return items


def _submit(
    engine: Engine, caller: Caller, session_id: uuid.UUID, items: list[dict[str, Any]], *, batch: bool
) -> tuple[bool, list[StoredResponse]]:
    params: dict[str, Any] = {"session_id": str(session_id), "items": encode_data(items)}
    if isinstance(caller, Guest):
        name = "responses/submit_response_guest"
        params["key_hash"] = caller.key_hash
    else:
        name = "responses/submit_response_user"
        params["user_id"] = caller.uid
    return rerun_if_race_lost(
        lambda: _run_submit(engine, name, params, batch),
        gave_up=Conflict("This responseId was being stored by another request at the same time; try again."),
    )


def _run_submit(engine: Engine, name: str, params: dict, batch: bool) -> tuple[bool, list[StoredResponse]]:
    # One statement, atomic by itself: every refusal below is decided on rows it did not
    # write, and a responseId that another request inserted meanwhile fails it whole.
    try:
        with single_statement(engine) as conn:
            rows = conn.rows(statement(name), params)
    except Exception as error:
        if sqlstate(error) == UNIQUE_VIOLATION:
            raise RaceLost() from None
        raise
    outcomes = {row.outcome for row in rows}
    if "missing" in outcomes:
        raise NotFound("No session with this sessionId; create one with create_session first.")
    if "claimed" in outcomes:
        raise GuestClaimed(ANONYMOUS_CLAIMED)
    if "denied" in outcomes:
        raise PermissionDenied("This session belongs to another visitor.")
    if "completed" in outcomes:
        raise Conflict("This session is completed: it takes no new responses (a retry of a stored one is answered).")
    rows.sort(key=lambda row: row.position)
    for row in rows:
        if str(row.session_id) != params["session_id"]:
            if not batch:
                raise Conflict("This responseId is already in use in another session; send a new one (or none).")
            index = row.position - 1
            raise Conflict(
                f"responses[{index}]: this responseId is already in use in another session; send a new one.",
                index=index,
            )
    stored = [StoredResponse(row.id, row.session_id, row.visitor_number, row.level, row.created_at) for row in rows]
    created = [response for response, row in zip(stored, rows, strict=True) if row.outcome == "created"]
    if created:
        # One line per request: a batch of 500 is one line, naming its first response.
        log.info(
            "stored response" if len(created) == 1 else f"stored {len(created)} responses",
            extra={
                "fields": {
                    "responseId": str(created[0].response_id),
                    "sessionId": str(created[0].session_id),
                    "visitorNumber": created[0].visitor_number,
                }
                | ({"responses": len(created)} if batch else {})
            },
        )
    return bool(created), stored
