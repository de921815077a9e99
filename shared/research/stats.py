"""get_study_stats: each experiment's figures, computed by PostgreSQL in one snapshot,
with uploads counted in Firestore (docs/design/researchers.md)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from shared.core import failures
from shared.core.db import read_only_snapshot, statement
from shared.core.encodings import rfc3339
from shared.research.researchers import Scope

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

DAYS = 30
# A Firestore count that cannot be answered within this many seconds answers 503.
FIRESTORE_DEADLINE_SECONDS = 5.0


def study_stats(engine: Engine, firestore_client, scope: Scope, now: datetime | None = None) -> dict[str, Any]:
    """The answer of get_study_stats for the sessions in `scope`: one entry per
    experiment that has any, in experimentId order, the sessions without one last."""
    now = now or datetime.now(UTC)
    today = now.astimezone(UTC).date()
    days = [today - timedelta(days=n) for n in range(DAYS - 1, -1, -1)]
    params = {**scope.params, "since": days[0]}
    with read_only_snapshot(engine) as conn:
        totals = conn.execute(statement("stats/totals"), params).all()
        daily = conn.execute(statement("stats/daily"), params).all()
        every_experiment = (
            [row.experiment_id for row in conn.execute(statement("stats/experiments"))]
            if any(row.experiment_id is None for row in totals)
            else []
        )
    uploads = _upload_counts(firestore_client, [row.experiment_id for row in totals], every_experiment)
    experiments = []
    for row in totals:
        experiment = row.experiment_id
        by_day = {d.day: d for d in daily if d.experiment_id == experiment}
        experiments.append(
            {
                "experimentId": experiment,
                "visitors": row.visitors,
                "registeredVisitors": row.registered_visitors,
                "sessions": row.sessions,
                "responses": int(row.responses),
                "uploads": uploads[experiment],
                "firstSessionAt": rfc3339(row.first_session_at),
                "lastSessionAt": rfc3339(row.last_session_at),
                "levels": funnel(row),
                "daily": [
                    {
                        "date": day.isoformat(),
                        "newVisitors": int(by_day[day].new_visitors) if day in by_day else 0,
                        "sessions": int(by_day[day].sessions) if day in by_day else 0,
                        "responses": int(by_day[day].responses) if day in by_day else 0,
                    }
                    for day in days
                ],
            }
        )
    return {"generatedAt": rfc3339(now), "experiments": experiments}


def funnel(row) -> list[dict[str, int]]:
    """For each level that the experiment's responses reached, the sessions whose highest
    level is at least it, from study_stats_totals: the reached levels (bits of
    low_levels, and high_levels) and how many sessions stopped at each highest level."""
    bits = int(row.low_levels or 0)
    reached = sorted({level for level in range(63) if bits >> level & 1} | set(row.high_levels or ()))
    stopped = list(zip(row.highest_levels or (), row.highest_sessions or ()))
    return [
        {"level": level, "sessions": sum(int(n) for highest, n in stopped if highest >= level)} for level in reached
    ]


def _upload_counts(firestore_client, experiments: list[str | None], every_experiment: list[str]) -> dict:
    """Uploads per experiment of `experiments`; None (sessions without one) needs every_experiment."""
    counts: dict[str | None, int] = {e: count_uploads(firestore_client, e) for e in experiments if e is not None}
    if None in experiments:
        others = sum(counts[e] if e in counts else count_uploads(firestore_client, e) for e in every_experiment)
        counts[None] = count_uploads(firestore_client, None) - others
    return counts


def count_uploads(firestore_client, experiment_id: str | None) -> int:
    """The `uploads` documents of the experiment; with None, every one."""
    from google.api_core import exceptions
    from google.cloud.firestore import FieldFilter

    from shared.core.stores import firestore_retry

    query = firestore_client.collection("uploads")
    if experiment_id is not None:
        query = query.where(filter=FieldFilter("experimentId", "==", experiment_id))
    try:
        results = query.count().get(retry=firestore_retry(), timeout=FIRESTORE_DEADLINE_SECONDS)
    except (exceptions.GoogleAPICallError, exceptions.RetryError) as error:
        raise failures.unavailable("Firestore", error, "Firestore is unavailable; try again shortly.") from error
    return int(results[0][0].value)
