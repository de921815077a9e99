"""get_study_stats: each experiment's figures, from one PostgreSQL statement over the sessions
and the counters that triggers keep as responses and uploads are written
(docs/design/researchers.md, "Statistics")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from shared.core.db import read_only_snapshot, statement
from shared.core.encodings import rfc3339
from shared.research.researchers import Scope

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

DAYS = 30


def study_stats(engine: Engine, scope: Scope, now: datetime | None = None) -> dict[str, Any]:
    """The answer of get_study_stats for the sessions in `scope`: one entry per
    experiment that has any, in experimentId order, the sessions without one last."""
    now = now or datetime.now(UTC)
    today = now.astimezone(UTC).date()
    days = [today - timedelta(days=n) for n in range(DAYS - 1, -1, -1)]
    with read_only_snapshot(engine) as conn:
        conn.execute(statement("stats/work_mem"))
        rows = conn.execute(statement("stats/figures"), {**scope.params, "since": days[0]}).all()
    return {"generatedAt": rfc3339(now), "experiments": [_experiment(row, days) for row in rows]}


def _experiment(row, days) -> dict[str, Any]:
    by_day = {
        day: (int(new), int(sessions), int(responses))
        for day, new, sessions, responses in zip(
            row.days or (), row.day_new_visitors or (), row.day_sessions or (), row.day_responses or ()
        )
    }
    return {
        "experimentId": row.experiment_id,
        "visitors": row.visitors,
        "registeredVisitors": row.registered_visitors,
        "sessions": int(row.sessions),
        "responses": int(row.responses),
        "uploads": int(row.uploads),
        "firstSessionAt": rfc3339(row.first_session_at),
        "lastSessionAt": rfc3339(row.last_session_at),
        "levels": funnel(row),
        "daily": [
            dict(zip(("date", "newVisitors", "sessions", "responses"), (day.isoformat(), *by_day.get(day, (0, 0, 0)))))
            for day in days
        ],
    }


def funnel(row) -> list[dict[str, int]]:
    """For each level that the experiment's responses reached, the sessions whose highest
    level is at least it, from stats/figures: the reached levels (bits of low_levels, and
    high_levels) and how many sessions stopped at each highest level."""
    bits = int(row.low_levels or 0)
    reached = sorted({level for level in range(63) if bits >> level & 1} | set(row.high_levels or ()))
    stopped = list(zip(row.highest_levels or (), row.highest_sessions or ()))
    return [
        {"level": level, "sessions": sum(int(n) for highest, n in stopped if highest >= level)} for level in reached
    ]
