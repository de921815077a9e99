"""complete_session (SPEC §14.4): a session completed only once the server holds the responses
the client recorded, its answer stored for repeats, its participant in the participation ledger
and a Prolific delivery recorded (§14.5), in one transaction (docs/design/completion.md)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote, urlencode

from pydantic import Field, StrictInt

from shared.core.db import statement, transaction
from shared.core.encodings import compact_json, rfc3339
from shared.core.errors import (
    ANONYMOUS_CLAIMED,
    Conflict,
    GuestClaimed,
    Incomplete,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from shared.core.logs import get_logger
from shared.studies.config import PROLIFIC_COMPLETE_URL, ExperimentConfig, Name, fill
from shared.studies.participants import Participant, participant_hash
from shared.web.auth import Caller, Guest
from shared.web.bodies import Body, SessionId

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

log = get_logger("completion")

EXCLUDED = "excluded"  # set by researchers only (SPEC §14.4)
# complete_session's answer, in this order (a repeat answers the stored one: jsonb keeps no order).
ANSWER_FIELDS = ("sessionId", "outcome", "completedAt", "completionCode", "redirectUrl")


class Completion(Body):
    """complete_session's body."""

    sessionId: SessionId
    outcome: Name = "completed"
    responseCount: Annotated[StrictInt, Field(ge=0)]


@dataclass(frozen=True)
class Completed:
    """What complete_session answers: `created` (201) or a repeat (200); `body`, as stored; and the
    session of a Prolific delivery recorded by this call, to attempt before answering."""

    created: bool
    body: dict[str, Any]
    delivery: uuid.UUID | None = None


def parse(document: Any) -> Completion:
    from shared.web.models import parse as parse_body

    return parse_body(Completion, document)


def complete_session(engine: Engine, caller: Caller, completion: Completion, prolific_token: bool) -> Completed:
    """Complete one of the caller's sessions (SPEC §14.4). `prolific_token`: whether
    PROLIFIC_API_TOKEN is set, without which no delivery is recorded (§14.5).

    Raises NotFound, PermissionDenied, GuestClaimed (whose session), InvalidArgument (an outcome
    the experiment does not have, or excluded), Conflict (completed with another outcome) and
    Incomplete (fewer responses stored than responseCount; nothing changes)."""
    with transaction(engine) as conn:
        session = _lock(conn, caller, completion.sessionId)
        config = _config(session.experiment_id, session.config)
        _check_outcome(config, completion.outcome)
        if session.completed_at is not None:
            if session.outcome != completion.outcome:
                raise Conflict(
                    f"This session was completed with outcome {session.outcome}; it cannot be completed again "
                    "with another outcome."
                )
            return Completed(False, {field: session.completion.get(field) for field in ANSWER_FIELDS})
        body = _answer(session, config, completion.outcome)
        studied = config is not None and not session.test  # a participant of a study: ledger, delivery
        server_code, undelivered = None, None
        if config is not None and studied:
            server_code, undelivered = _server_code(session, config, completion.outcome, prolific_token)
        done = conn.execute(
            statement("completion/complete"),
            {
                "session_id": str(session.id),
                "response_count": completion.responseCount,
                "completed_at": session.now,
                "outcome": completion.outcome,
                "completion": compact_json(body),
                "participant_hash": _participant_hash(session) if studied else None,
                "submission_id": session.submission_id,
                "server_code": server_code,
            },
        ).one()
        if not done.completed:
            raise Incomplete(
                f"The server holds {done.stored} of the {completion.responseCount} responses of this session: "
                "send the missing ones (a retry of a stored responseId is safe), then complete it again.",
                stored=done.stored,
            )
    fields = {"sessionId": str(session.id), "experimentId": session.experiment_id}
    log.info("completed session", extra={"fields": {**fields, "visitorNumber": session.visitor_number}})
    if undelivered:
        log.warning("no Prolific delivery for a completed session: %s", undelivered, extra={"fields": fields})
    return Completed(True, body, session.id if server_code is not None else None)


def _lock(conn: Connection, caller: Caller, session_id: uuid.UUID):
    """The caller's session, locked until the transaction ends; the refusals otherwise."""
    params: dict[str, Any] = {"session_id": str(session_id)}
    if isinstance(caller, Guest):
        name, params["key_hash"] = "completion/lock_session_guest", caller.key_hash
    else:
        name, params["user_id"] = "completion/lock_session_user", caller.uid
    row = conn.execute(statement(name), params).one()
    if row.ownership == "missing":
        raise NotFound("No session with this sessionId; create one with create_session first.")
    if row.ownership == "claimed":
        raise GuestClaimed(ANONYMOUS_CLAIMED)
    if row.ownership == "denied":
        raise PermissionDenied("This session belongs to another visitor.")
    return row


def _config(experiment_id: str | None, document: dict | None) -> ExperimentConfig | None:
    """The experiment's configuration as stored (validated when it was set); None for a free label."""
    if document is None:
        return None
    return ExperimentConfig.model_validate({**document, "experimentId": experiment_id})


def _check_outcome(config: ExperimentConfig | None, outcome: str) -> None:
    if outcome == EXCLUDED:
        raise InvalidArgument("outcome: excluded is set by the experiment's researchers, not by a participant.")
    if config is not None and outcome != "completed" and outcome not in config.outcomes:
        known = ", ".join(["completed", *sorted(config.outcomes)])
        raise InvalidArgument(f"outcome: this experiment's outcomes are {known}.")


def _answer(session, config: ExperimentConfig | None, outcome: str) -> dict[str, Any]:
    """complete_session's answer: the outcome's code and where to send the participant."""
    code, redirect = None, None
    if config is not None:
        given = config.outcomes.get(outcome)
        code = given.code if given else None
        redirect = _redirect_url(session, config, outcome, code)
    return {
        "sessionId": str(session.id),
        "outcome": outcome,
        "completedAt": rfc3339(session.now),
        "completionCode": code,
        "redirectUrl": redirect,
    }


def _redirect_url(session, config: ExperimentConfig, outcome: str, code: str | None) -> str | None:
    """SPEC §14.4, per platform; null where the platform needs a code, a credit URL or platform ids
    that this session or outcome lacks (a session started before the experiment was configured)."""
    if config.platform == "prolific":
        return PROLIFIC_COMPLETE_URL.format(code=quote(code, safe="")) if code else None
    if config.platform == "sona":
        given = config.outcomes.get(outcome)
        if given is None or given.creditUrl is None or session.participant_id is None:
            return None
        return given.creditUrl.replace("{participantId}", quote(session.participant_id, safe=""))
    if config.platform == "mturk":
        if session.turk_submit_to is None or session.platform_assignment_id is None:
            return None
        query = urlencode({"assignmentId": session.platform_assignment_id, "outcome": outcome})
        return f"{session.turk_submit_to.rstrip('/')}/mturk/externalSubmit?{query}"
    if config.redirectUrl is None:
        return None
    return fill(
        config.redirectUrl,
        code=code,
        outcome=outcome,
        sessionId=session.id,
        visitorNumber=session.visitor_number,
    )


def _participant_hash(session) -> bytes:
    """The ledger's key of already_participated: the platform participant, else the session's owner."""
    if session.participant_id is not None:
        participant = Participant(platform=session.platform, participant_id=session.participant_id)
    elif session.user_id is not None:
        participant = Participant(user_id=session.user_id)
    else:
        participant = Participant(guest_id=session.guest_id)
    return participant_hash(session.experiment_id, participant)


def _server_code(
    session, config: ExperimentConfig, outcome: str, prolific_token: bool
) -> tuple[str | None, str | None]:
    """The code of a Prolific completion from the server (SPEC §14.5), when the experiment asks for
    one, the token is set, the outcome has a serverCode and the session its submission id; else
    None, and why not when the experiment asks for one."""
    if not (config.platform == "prolific" and config.prolificServerSide):
        return None, None
    given = config.outcomes.get(outcome)
    server_code = given.serverCode if given else None
    if not prolific_token:
        return None, "PROLIFIC_API_TOKEN is not set"
    if server_code is None:
        return None, f"outcome {outcome} has no serverCode"
    if session.submission_id is None:
        return None, "the session has no submissionId"
    return server_code, None
