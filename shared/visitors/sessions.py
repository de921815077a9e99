"""Visitors and their sessions: numbering, create_session and get_visitor, each one SQL
statement (docs/design/database.md); a new session of a configured experiment is admitted first,
in one transaction with that statement (shared/studies/admission.py)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from shared.core import failures
from shared.core.db import (
    RaceLost,
    Statements,
    rerun_if_race_lost,
    single_statement,
    sqlstate,
    statement,
    transaction,
)
from shared.core.encodings import compact_json, rfc3339
from shared.core.errors import ANONYMOUS_CLAIMED, Conflict, GuestClaimed, InvalidArgument, NotFound, ResourceExhausted
from shared.core.logs import get_logger
from shared.visitors.guest_limit import Window
from shared.web.auth import Caller, Guest, User

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from shared.web.models import NewSession

log = get_logger("visitors")

T = TypeVar("T")

# Errors of nextval itself: the sequence is exhausted, missing or not permitted.
# The session is then created without a number (docs/api.md, graceful degradation).
NUMBERING_SQLSTATES = {"2200H", "42P01", "42501"}

# shared/statements/: create_session's statement for each kind of caller, numbered
# (the usual one) and unnumbered (while nextval fails).
_CREATE_SESSION = {Guest: "sessions/create_session_guest", User: "sessions/create_session_user"}
_CREATE_SESSION_UNNUMBERED = {
    Guest: "sessions/create_session_guest_unnumbered",
    User: "sessions/create_session_user_unnumbered",
}


# The experimentIds this instance has met configured: their new sessions go to admission at once,
# without the statement that would answer 'configured'. A configuration is never deleted (a row
# gone is met by _create_admitted, which then creates the session as for an unconfigured one).
_CONFIGURED: set[str] = set()
_CONFIGURED_KEPT = 4096

_SESSION_ID_IN_USE = "This sessionId is already in use; send a new one (or none)."


@dataclass(frozen=True)
class Session:
    session_id: uuid.UUID
    visitor_number: int | None
    user_id: str | None
    guest_id: uuid.UUID | None
    experiment_id: str | None
    created_at: datetime
    condition: str | None = None  # SPEC §14.2: None without conditions

    def to_json(self) -> dict[str, Any]:
        return {
            "sessionId": str(self.session_id),
            "visitorNumber": self.visitor_number,
            "userId": self.user_id,
            "guestId": str(self.guest_id) if self.guest_id else None,
            "experimentId": self.experiment_id,
            "createdAt": rfc3339(self.created_at),
            "condition": self.condition,
        }


def create_session(
    engine: Engine, caller: Caller, new_session: NewSession, window: Window | None = None, session_limit: int = 0
) -> tuple[bool, Session]:
    """Create the caller's session (and the caller, and its number, on first sight).

    Returns (created, session): created is False for a retry of the caller's own
    session id. Raises Conflict for someone else's id, GuestClaimed for a guest
    or an anonymous account that a registered user has claimed, ResourceExhausted
    (429) when the caller is a new visitor and `window` (the guest-creation limit of
    its client address, shared/visitors/guest_limit.py; default: none) is full, or when
    the caller made `session_limit` sessions in the rolling hour (0, the default: no limit;
    sql/008_session_limit.sql). A refusal writes nothing; a retry is never refused.

    A new session of a configured experiment is admitted first (shared/studies/admission.py:
    StudyClosed, StudyFull, AlreadyParticipated, InvalidArgument for a `participant` that does not
    fit its platform, PermissionDenied for a test run by someone else than its researchers).
    """
    if (new_session.participant is not None or new_session.test) and new_session.experimentId is None:
        raise InvalidArgument("participant and test are for a configured experiment: send its experimentId.")
    if new_session.test:
        from shared.studies import admission  # with pydantic: see _create_admitted

        admission.require_tester(caller, new_session.experimentId)
    params = {
        "session_id": str(new_session.sessionId or uuid.uuid4()),
        "experiment_id": new_session.experimentId,
        "metadata": compact_json(new_session.metadata) if new_session.metadata else "{}",
        **(window or Window.off()).params(),
        "session_limit": session_limit,
    }
    if isinstance(caller, Guest):
        params.update(key_hash=caller.key_hash, new_guest_id=str(uuid.uuid4()))
    else:
        params.update(user_id=caller.uid, email=caller.email)

    return rerun_if_race_lost(
        lambda: numbered_or_degraded(
            lambda numbered: _create(engine, caller, new_session, params, numbered),
            "creating the session",
            sessionId=params["session_id"],
        ),
        gave_up=Conflict("The visitor was being created by another request at the same time; try again."),
    )


def numbered_or_degraded(run: Callable[[bool], T], doing: str, **fields) -> T:
    """run(True); if nextval itself fails, log a warning and run(False), the
    same work with visitor number NULL (docs/api.md, graceful degradation)."""
    try:
        return run(True)
    except Exception as error:
        if sqlstate(error) not in NUMBERING_SQLSTATES:
            raise
        log.warning(
            "visitor numbering failed (%s); %s without a number, "
            "run `python -m shared.backfill` once numbering works again",
            failures.one_line(error),
            doing,
            extra={"fields": {"sqlstate": sqlstate(error), **fields}},
        )
        return run(False)


def _create(
    engine: Engine, caller: Caller, new_session: NewSession, params: dict, numbered: bool
) -> tuple[bool, Session]:
    """One statement; or, for a new session of a configured experiment (the statement answers
    'configured' and writes nothing), admission and the statement in one transaction. A request
    with `participant` or `test` is for a configured experiment: it goes there at once."""
    name = (_CREATE_SESSION if numbered else _CREATE_SESSION_UNNUMBERED)[type(caller)]
    if new_session.participant is None and not new_session.test and new_session.experimentId not in _CONFIGURED:
        with single_statement(engine) as conn:
            row = _one(conn.rows(statement(name), {**params, "admitted": False}))
        if row.outcome != "configured":
            return _answer(row, caller)
        if len(_CONFIGURED) >= _CONFIGURED_KEPT:
            _CONFIGURED.clear()
        assert new_session.experimentId is not None  # only an experiment is configured
        _CONFIGURED.add(new_session.experimentId)
    return _create_admitted(engine, caller, new_session, name, params)


def _create_admitted(
    engine: Engine, caller: Caller, new_session: NewSession, name: str, params: dict
) -> tuple[bool, Session]:
    """Admission (shared/studies/admission.py) with the experiment's row held, then create_session's
    statement, then the session's assignment, condition and platform ids: one transaction, so a
    refusal or a failure writes nothing and concurrent admissions are counted exactly."""
    # Imported here: it loads the configuration's model (pydantic), which a function that never
    # meets a configured experiment does not need (docs/design/cold-start.md).
    from shared.studies import admission

    assert new_session.experimentId is not None
    with transaction(engine) as connection:
        experiment = admission.lock_experiment(connection, new_session.experimentId, params["session_id"])
        # The transaction is open (pg8000 sent BEGIN before the lock's statement): the rest runs
        # prepared in it, as single_statement's statements do (a long text sent unprepared costs
        # pg8000's parameter parsing and the planner milliseconds each time). Were it not open, the
        # exact counts of tests/e2e/test_studies_admission.py would fail.
        conn = Statements(engine, connection)
        if experiment is None and (new_session.participant is not None or new_session.test):
            raise InvalidArgument(
                f"participant and test are for a configured experiment; {new_session.experimentId!r} has no "
                "configuration (configure_experiment)."
            )
        admitted = None
        if experiment is not None and not experiment.taken:  # a retry is answered as before
            admitted = admission.admit(conn, experiment, caller, new_session)
        row = _one(conn.rows(statement(name), {**params, "admitted": True}))
        created, session = _answer(row, caller)
        if created and admitted is not None:
            admission.record(conn, admitted, session.session_id, session.user_id, session.guest_id)
            session = replace(session, condition=admitted.condition)
    return created, session


def _one(rows: Sequence):
    """create_session's statement's one row; none: the visitor was being created by a concurrent
    request (RaceLost: run it again)."""
    if not rows:
        raise RaceLost()
    return rows[0]


def _answer(row, caller: Caller) -> tuple[bool, Session]:
    """What create_session's statement said: (created, session), or the refusal it stands for."""
    if row.outcome == "claimed":
        raise GuestClaimed(
            "This guest's data now belongs to a registered account; sign in to continue."
            if isinstance(caller, Guest)
            else ANONYMOUS_CLAIMED
        )
    if row.outcome == "limited":
        # The count of the address, not who it is: nothing here names the address or the caller.
        log.warning(
            "refused a new visitor: the guest-creation limit of its address is reached",
            extra={"fields": {"retryAfterSeconds": row.retry_after}},
        )
        raise ResourceExhausted(
            "Too many new visitors from this network in the last hour; try again later "
            "(or sign in: signed-in accounts are not limited).",
            row.retry_after or 1,
        )
    if row.outcome == "session_limited":
        log.warning(
            "refused a new session: the visitor's session limit is reached",
            extra={"fields": {"retryAfterSeconds": row.retry_after}},
        )
        raise ResourceExhausted(
            "Too many new sessions from this visitor in the last hour; try again later.", row.retry_after or 1
        )
    if row.outcome == "erased":
        # The same answer as for someone else's session id: it says nothing about whose it was.
        raise Conflict(_SESSION_ID_IN_USE)
    session = Session(
        row.id, row.visitor_number, row.user_id, row.guest_id, row.experiment_id, row.created_at, row.condition
    )
    if row.outcome == "created":
        # DEBUG, not INFO: Cloud Run logs every request already, the session's row holds its
        # number and time, and the line costs CPU on every new session (docs/design/performance.md).
        # LOG_LEVEL=DEBUG shows it; below that, its fields are not even made.
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "created session",
                extra={"fields": {"sessionId": str(session.session_id), "visitorNumber": session.visitor_number}},
            )
        return True, session
    if _owned_by(session, caller, row.visitor_guest_id):
        return False, session
    # Someone else's session id. The statement wrote nothing (see `taken`).
    raise Conflict(_SESSION_ID_IN_USE)


def _owned_by(session: Session, caller: Caller, caller_guest_id) -> bool:
    if isinstance(caller, User):
        return session.user_id == caller.uid
    return session.user_id is None and caller_guest_id is not None and session.guest_id == caller_guest_id


def get_visitor(engine: Engine, caller: Caller) -> dict[str, Any]:
    """The caller's number, ids and sessions (newest first, with response counts and the
    uploads recorded so far).

    Reads only; under READ COMMITTED each statement sees its own snapshot inside
    a transaction or not, so none is opened."""
    with single_statement(engine) as conn:
        if isinstance(caller, User):
            row = conn.first(statement("sessions/get_visitor_user"), {"user_id": caller.uid})
            if row is None:
                raise NotFound("No visitor record yet: create a session first.")
            if row.claimed_by is not None:
                raise GuestClaimed(ANONYMOUS_CLAIMED)
            visitor = {"visitorNumber": row.visitor_number, "userId": row.id, "guestId": None}
            sessions = conn.rows(statement("sessions/visitor_sessions_user"), {"user_id": row.id})
        else:
            row = conn.first(statement("sessions/get_visitor_guest"), {"key_hash": caller.key_hash})
            if row is None:
                raise NotFound("No visitor record yet: create a session first.")
            if row.claimed_by is not None:
                raise GuestClaimed("This guest's data now belongs to a registered account; sign in to see it.")
            visitor = {"visitorNumber": row.visitor_number, "userId": None, "guestId": str(row.id)}
            sessions = conn.rows(statement("sessions/visitor_sessions_guest"), {"guest_id": row.id})
    visitor["sessions"] = [
        {
            "sessionId": str(r.id),
            "experimentId": r.experiment_id,
            "createdAt": rfc3339(r.created_at),
            "condition": r.condition,
            "responseCount": r.response_count,
            "uploads": r.uploads,
        }
        for r in sessions
    ]
    return visitor
