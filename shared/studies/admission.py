"""Admission to a configured experiment (SPEC §14.1-14.3): who the participant is, whether it may
start a session, and its condition, decided in create_session's transaction while the experiment's
row is held (docs/design/admission.md)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shared.core.db import statement
from shared.core.errors import (
    ANONYMOUS_CLAIMED,
    AlreadyParticipated,
    GuestClaimed,
    InvalidArgument,
    PermissionDenied,
    StudyClosed,
    StudyFull,
)
from shared.core.logs import get_logger
from shared.studies.config import ExperimentConfig
from shared.studies.participants import Participant, participant_hash
from shared.web.auth import Caller, Guest, User

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from shared.core.db import Statements
    from shared.web.bodies import SessionParticipant
    from shared.web.models import NewSession

log = get_logger("studies")

# The fields of `participant` each platform takes (SPEC §14.3), and the study URL's parameter
# that carries each one, for the messages.
PLATFORM_FIELDS = {
    "prolific": {"participantId": "PROLIFIC_PID", "studyId": "STUDY_ID", "submissionId": "SESSION_ID"},
    "sona": {"participantId": "the survey code"},
    "mturk": {
        "participantId": "workerId",
        "assignmentId": "assignmentId",
        "hitId": "hitId",
        "turkSubmitTo": "turkSubmitTo",
    },
}
# session_participants' column of each field.
_COLUMNS = {
    "studyId": "study_id",
    "submissionId": "submission_id",
    "assignmentId": "mturk_assignment_id",
    "hitId": "hit_id",
    "turkSubmitTo": "turk_submit_to",
}

CLOSED = "This study is closed: it is not taking new participants."
FULL = (
    "This study is full: it has all the participants it needs. "
    "If you came from a recruitment platform, return the study there."
)
PARTICIPATED = "You have already taken part in this study; it can be taken only once."


@dataclass(frozen=True)
class Experiment:
    """The experiment's row, held by this transaction."""

    id: str
    config: ExperimentConfig
    taken: bool  # the request's sessionId is a stored (or erased) session's: a retry


@dataclass(frozen=True)
class Admission:
    """A session admitted: its participant's assignment (None: a new one is made, or none for a
    test run), its condition, and the platform's ids to store with it."""

    experiment_id: str
    condition: str | None
    assignment_id: int | None
    test: bool
    participant: SessionParticipant | None
    platform: str

    def params(self, session_id: uuid.UUID, user_id: str | None, guest_id: uuid.UUID | None) -> dict[str, Any]:
        """record_session.sql's parameters for the session just inserted (and its owner's ids)."""
        ids = self.participant
        platform_participant = ids is not None
        params: dict[str, Any] = {
            "experiment_id": self.experiment_id,
            "session_id": str(session_id),
            "platform": self.platform,
            "participant_id": ids.participantId if ids else None,
            # An owner participant is the user, else the guest; a platform participant is neither.
            "user_id": None if platform_participant else user_id,
            "guest_id": None if platform_participant or user_id else (str(guest_id) if guest_id else None),
            "condition": self.condition,
            "new_assignment": self.assignment_id is None and not self.test,
            "assignment_id": self.assignment_id,
            "test": self.test,
        }
        for field, column in _COLUMNS.items():
            params[column] = getattr(ids, field) if ids else None
        return params


def require_tester(caller: Caller, experiment_id: str | None) -> None:
    """A test run (`"test": true`) is for a researcher whose claim covers the experiment: 403 otherwise."""
    from shared.research import researchers

    if not isinstance(caller, User):
        raise PermissionDenied(
            "A test run (test: true) is for researchers of this experiment: sign in with a researcher account."
        )
    if not researchers.researcher(caller).may_see(experiment_id):
        raise PermissionDenied(f"This researcher account does not cover experiment {experiment_id!r}; no test run.")


def lock_experiment(conn: Connection, experiment_id: str, session_id: str) -> Experiment | None:
    """The experiment's row, held FOR UPDATE until the transaction ends; None if not configured.
    The transaction's first statement, through SQLAlchemy: pg8000 sends BEGIN before it (the
    statements after it may then run prepared, shared.core.db.Statements, in that transaction)."""
    row = conn.execute(
        statement("admission/lock_experiment"), {"experiment_id": experiment_id, "session_id": session_id}
    ).first()
    if row is None:
        return None
    config = row.config if isinstance(row.config, dict) else json.loads(row.config)
    return Experiment(experiment_id, ExperimentConfig.model_validate(config), row.taken)


def admit(conn: Statements, experiment: Experiment, caller: Caller, new_session: NewSession) -> Admission:
    """Whether the caller's new session may start, and its condition (SPEC §14.1-14.2).

    Raises InvalidArgument for a participant that does not fit the platform, StudyClosed,
    AlreadyParticipated, StudyFull, GuestClaimed; none of them writes anything. A test run passes
    every refusal and is given a condition by the same rule, without an assignment."""
    config = experiment.config
    check_participant(config, new_session.participant)
    test = new_session.test
    found = _find_participant(conn, experiment, caller, new_session.participant, test)
    if not test:
        if not config.active:
            _refused("closed", experiment.id)
            raise StudyClosed(CLOSED)
        if not config.allowRepeat and found.participated(conn, experiment.id):
            _refused("already participated", experiment.id)
            raise AlreadyParticipated(PARTICIPATED)
    condition = found.condition
    if found.counted is not None:  # a new participant, or a test run
        admitted, places = found.counted["admitted"], found.counted["places"]
        if not test and is_full(config, admitted, places):
            _refused("full", experiment.id)
            raise StudyFull(FULL)
        condition = choose_condition(config, places)
    return Admission(
        experiment.id, condition, None if test else found.assignment_id, test, new_session.participant, config.platform
    )


def check_participant(config: ExperimentConfig, ids: SessionParticipant | None) -> None:
    """`participant` fits the experiment's platform (SPEC §14.3): 400 naming what is wrong (never a value)."""
    platform = config.platform
    if platform == "none":
        if ids is not None:
            raise InvalidArgument(
                f"participant: experiment {config.experimentId!r} is not run on a recruitment platform "
                "(its platform is none); send no participant."
            )
        return
    fields = PLATFORM_FIELDS[platform]
    required = [f for f in fields if f != "submissionId" or config.prolificServerSide]
    if ids is None:
        wanted = ", ".join(f"{f} ({fields[f]})" for f in required)
        raise InvalidArgument(
            f"participant is required: experiment {config.experimentId!r} runs on {platform}; send {wanted}."
        )
    given = [f for f in ids.model_fields_set if getattr(ids, f) is not None]
    foreign = sorted(f for f in given if f not in fields)
    if foreign:
        raise InvalidArgument(
            f"participant.{foreign[0]} is not a {platform} field; {platform} takes {', '.join(fields)}."
        )
    missing = [f for f in required if getattr(ids, f) is None]
    if missing:
        raise InvalidArgument(
            f"participant.{missing[0]} is required on {platform} ({fields[missing[0]]} in the study URL)."
        )


def is_full(config: ExperimentConfig, admitted: int, places: dict[str, int]) -> bool:
    """No place for a new participant: the cap is reached, or every condition has a quota and is at it."""
    if config.maxParticipants is not None and admitted >= config.maxParticipants:
        return True
    return bool(config.conditions) and all(
        c.quota is not None and places.get(c.name, 0) >= c.quota for c in config.conditions
    )


def choose_condition(config: ExperimentConfig, places: dict[str, int]) -> str | None:
    """The condition with the fewest places occupied among those below their quota, the first listed
    on a tie (SPEC §14.2); None without conditions. (A test run when every one is at its quota: the
    fewest of all.)"""
    if not config.conditions:
        return None
    open_ = [c for c in config.conditions if c.quota is None or places.get(c.name, 0) < c.quota]
    return min(open_ or config.conditions, key=lambda c: places.get(c.name, 0)).name


@dataclass(frozen=True)
class _Found:
    """The participant as the experiment knows it: its assignment (None: a new participant), the
    ledger's answer if its statement gave one, else the hashes to ask it for, and what the
    experiment counted (experiment_places: for a new participant or a test run)."""

    assignment_id: int | None
    condition: str | None
    counted: dict[str, Any] | None
    in_ledger: bool | None = None
    hashes: tuple[bytes, ...] = ()

    def participated(self, conn: Statements, experiment_id: str) -> bool:
        if self.in_ledger is not None:
            return self.in_ledger
        if not self.hashes:  # a new visitor: nothing of it in the ledger
            return False
        row = conn.first(
            statement("admission/participated"), {"experiment_id": experiment_id, "hashes": list(self.hashes)}
        )
        return bool(row.participated)


def _find_participant(
    conn: Statements, experiment: Experiment, caller: Caller, ids: SessionParticipant | None, test: bool
) -> _Found:
    """The participant (the platform's when `ids` are given, else the caller: SPEC §14, Words),
    read while the experiment's row is held."""
    config = experiment.config
    params = {
        "experiment_id": experiment.id,
        "test": test,
        # Counted only where it decides something: a cap, or a condition to choose.
        "count_places": bool(config.conditions) or config.maxParticipants is not None,
        "lease_minutes": config.leaseMinutes,
        "count_earlier": config.maxParticipants is not None,
    }
    if ids is not None:
        participant = Participant(platform=config.platform, participant_id=ids.participantId)
        row = conn.first(
            statement("admission/participant_platform"),
            {
                **params,
                "platform": participant.platform,
                "participant_id": ids.participantId,
                "hashes": [participant_hash(experiment.id, participant)],
            },
        )
        return _Found(row.assignment_id, row.condition, row.counted, in_ledger=row.participated)
    if isinstance(caller, Guest):
        row = conn.first(statement("admission/participant_guest"), {**params, "key_hash": caller.key_hash})
        if row.claimed:
            raise GuestClaimed("This guest's data now belongs to a registered account; sign in to continue.")
        owner = () if row.guest_id is None else (participant_hash(experiment.id, Participant(guest_id=row.guest_id)),)
        return _Found(row.assignment_id, row.condition, row.counted, hashes=owner)
    row = conn.first(statement("admission/participant_user"), {**params, "user_id": caller.uid})
    if row.claimed:
        raise GuestClaimed(ANONYMOUS_CLAIMED)
    owners = [
        Participant(user_id=caller.uid),
        *(Participant(guest_id=uuid.UUID(g)) for g in row.guest_ids),
        *(Participant(user_id=u) for u in row.user_ids),
    ]
    return _Found(
        row.assignment_id, row.condition, row.counted, hashes=tuple(participant_hash(experiment.id, p) for p in owners)
    )


def record(conn: Statements, admission: Admission, session_id, user_id, guest_id) -> None:
    """Join the session just inserted to its participant (record_session.sql)."""
    conn.rows(statement("admission/record_session"), admission.params(session_id, user_id, guest_id))


def _refused(why: str, experiment_id: str) -> None:
    # The experiment and the reason, never who: no platform id, key or uid (SPEC §14.3).
    log.info("refused a new session: %s", why, extra={"fields": {"experimentId": experiment_id, "refusal": why}})
