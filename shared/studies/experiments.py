"""Configured experiments: set, read and list their configuration (configure_experiment,
`python -m shared.experiments`), and exclude a session (exclude_session, the command's `exclude`).

The configuration holds the researcher's completion codes: they leave this module only in
configure_experiment's answers and the command's `show`, never in a log line or the trail."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from shared.core.db import RaceLost, is_transient, rerun_if_race_lost, sqlstate, statement, transaction
from shared.core.encodings import compact_json, rfc3339
from shared.core.errors import Conflict, InvalidArgument, NotFound, ServiceError, Unavailable
from shared.core.logs import get_logger
from shared.studies.config import ExperimentConfig, parse_config

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

    from shared.research.researchers import Scope

log = get_logger("experiments")

EXPERIMENT_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
EXCLUDED = "excluded"

# Called inside the transaction that makes the change, so that the researchers' trail holds the
# act exactly when the change is made (shared.research.trail.Act.record_in).
Recorder = Callable[["Connection"], None]


def experiment_id_of(value: str | None) -> str:
    """An experimentId from a query string or the command line; 400 when it is not one."""
    if value is None or not EXPERIMENT_ID.fullmatch(value):
        raise InvalidArgument("experimentId must be 1-128 characters of A-Z a-z 0-9 . _ -.")
    return value


def requested_experiment(args) -> str | None:
    """configure_experiment's query string: one experimentId, or none (every configuration); 400 for
    anything else, as the other researcher functions refuse a parameter they do not know."""
    unknown = sorted(set(args) - {"experimentId"})
    if unknown:
        raise InvalidArgument(f"Unknown query parameter {unknown[0]!r}; configure_experiment takes experimentId.")
    asked = args.getlist("experimentId")
    if len(asked) > 1:
        raise InvalidArgument("experimentId may be given once.")
    return experiment_id_of(asked[0]) if asked else None


def answer(config: ExperimentConfig, updated_at) -> dict[str, Any]:
    """The configuration as configure_experiment answers it: the document and `updatedAt`."""
    return {**config.to_json(), "updatedAt": rfc3339(updated_at)}


def configure(engine: Engine, config: ExperimentConfig, recorded: Recorder | None = None) -> dict[str, Any]:
    """Store `config` in place of the experiment's configuration, under the experiment row's
    lock: 409 for a change that would contradict what participants already have (a condition
    holding assignments dropped, the platform changed once the experiment has sessions)."""

    def attempt() -> dict[str, Any]:
        with transaction(engine) as conn:
            params = {"id": config.experimentId, "config": compact_json(config.to_json())}
            stored = conn.execute(statement("experiments/lock"), {"id": config.experimentId}).first()
            if stored is None:
                made = _write(conn, "experiments/insert", params)
                if made is None:  # configured a moment ago by another request: check against it
                    raise RaceLost
                updated_at = made.updated_at
            else:
                _check_change(conn, ExperimentConfig.model_validate(stored.config), config)
                updated_at = _write(conn, "experiments/replace", params).updated_at
            if recorded is not None:
                recorded(conn)
        return answer(config, updated_at)

    return rerun_if_race_lost(attempt, Unavailable("The experiment is being configured by another request; try again."))


def _write(conn: Connection, name: str, params: dict[str, Any]):
    """Run a statement that carries the document, codes included: a failure that is not the
    database's being unavailable is logged by its SQLSTATE alone. SQLAlchemy writes the parameters
    into its error's text, and PostgreSQL may quote a value in its message (invalid JSON, a
    trigger's RAISE), so neither is logged."""
    import sqlalchemy

    try:
        return conn.execute(statement(name), params).first()
    except sqlalchemy.exc.SQLAlchemyError as error:
        if is_transient(error):
            raise  # transaction() logs it in one line and answers 503
        log.error(
            "storing an experiment's configuration failed: SQLSTATE %s (%s)", sqlstate(error), type(error).__name__
        )
        raise ServiceError("Something went wrong on our side; see the service logs.") from None


def _check_change(conn: Connection, before: ExperimentConfig, after: ExperimentConfig) -> None:
    dropped = sorted(set(before.condition_names()) - set(after.condition_names()))
    if dropped:
        held = conn.execute(
            statement("experiments/held_conditions"), {"id": after.experimentId, "dropped": dropped}
        ).all()
        if held:
            names = ", ".join(f"{row.condition} ({row.assignments})" for row in held)
            raise Conflict(
                f"Conditions that hold participants' assignments cannot be removed or renamed: {names}. "
                "Keep them (a quota stops new assignments), or configure a new experimentId."
            )
    if before.platform != after.platform:
        if conn.execute(statement("experiments/has_sessions"), {"id": after.experimentId}).scalar_one():
            raise Conflict(
                f"The platform cannot change from {before.platform} to {after.platform}: the experiment has "
                "sessions already. Configure a new experimentId for the other platform."
            )


def configuration(engine: Engine, experiment_id: str) -> dict[str, Any]:
    """The experiment's configuration and `updatedAt`; 404 when it has none."""
    with transaction(engine) as conn:
        row = conn.execute(statement("experiments/get"), {"id": experiment_id}).first()
    if row is None:
        raise NotFound(f"Experiment {experiment_id} has no configuration (it is a free label).")
    return answer(ExperimentConfig.model_validate(row.config), row.updated_at)


def configurations(engine: Engine, scope: Scope) -> list[dict[str, Any]]:
    """Every configuration in the scope's experiments, by experimentId."""
    params = {"everything": scope.everything, "experiments": list(scope.experiments)}
    with transaction(engine) as conn:
        found = conn.execute(statement("experiments/list"), params).all()
    return [answer(ExperimentConfig.model_validate(row.config), row.updated_at) for row in found]


def parse_document(document: Any) -> ExperimentConfig:
    """configure_experiment's body, or the command's file: the configuration document (400 otherwise)."""
    return parse_config(document)


def session_to_exclude(body: Any) -> uuid.UUID:
    """exclude_session's body, {"sessionId": "<uuid>"}: the session's id (400 otherwise)."""
    if not isinstance(body, dict) or set(body) != {"sessionId"}:
        raise InvalidArgument('The body must be {"sessionId": "<the session\'s id>"}.')
    return session_id_of(body["sessionId"])


def session_id_of(value: Any) -> uuid.UUID:
    """A session id from a body or the command line; 400 when it is not a UUID."""
    try:
        if not isinstance(value, str):
            raise ValueError
        return uuid.UUID(value)
    except ValueError:
        raise InvalidArgument(
            "sessionId must be a session's id, a UUID such as 3f0c8a4e-5b7d-4c1e-9a2b-6d8e0f1a2b3c."
        ) from None


def exclude(
    engine: Engine,
    session_id: uuid.UUID,
    allowed: Callable[[str | None], None] = lambda _experiment_id: None,
    recorded: Callable[[Connection, str | None], None] | None = None,
) -> dict[str, Any]:
    """Mark a session `excluded` (completed now unless it was): it holds no place any more, and
    statistics show it apart. `allowed(experiment_id)` raises when the caller may not (403).
    Safe to repeat: excluding an excluded session changes nothing."""
    with transaction(engine) as conn:
        session = conn.execute(statement("experiments/lock_session"), {"id": str(session_id)}).first()
        if session is None:
            raise NotFound(f"No session {session_id}.")
        allowed(session.experiment_id)
        if session.outcome == EXCLUDED:
            completed_at = session.completed_at
        else:
            completed_at = conn.execute(statement("experiments/exclude"), {"id": str(session_id)}).scalar_one()
            if recorded is not None:
                recorded(conn, session.experiment_id)
    return {
        "sessionId": str(session_id),
        "experimentId": session.experiment_id,
        "outcome": EXCLUDED,
        "completedAt": rfc3339(completed_at),
    }
