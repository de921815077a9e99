"""get_study_stats: each experiment's figures, from one PostgreSQL statement over the sessions
and the counters that triggers keep as responses and uploads are written, and a configured
experiment's study figures (SPEC §14.7; docs/design/researchers.md, "Statistics")."""

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
    experiment that has any or is configured, in experimentId order, the sessions without
    one last. Test runs are in no figure but testSessions."""
    now = now or datetime.now(UTC)
    today = now.astimezone(UTC).date()
    days = [today - timedelta(days=n) for n in range(DAYS - 1, -1, -1)]
    with read_only_snapshot(engine) as conn:
        conn.execute(statement("stats/work_mem"))
        rows = conn.execute(statement("stats/figures"), {**scope.params, "since": days[0], "now": now}).all()
    return {"generatedAt": rfc3339(now), "experiments": [_experiment(row, days) for row in rows]}


def _experiment(row, days) -> dict[str, Any]:
    figures = _figures(row, days)
    if row.config is not None:
        figures |= _study(row)
    return figures


def _figures(row, days) -> dict[str, Any]:
    by_day = {
        day: (int(new), int(sessions), int(responses))
        for day, new, sessions, responses in zip(
            row.days or (), row.day_new_visitors or (), row.day_sessions or (), row.day_responses or ()
        )
    }
    return {
        "experimentId": row.experiment_id,
        "visitors": int(row.visitors),
        "registeredVisitors": int(row.registered_visitors),
        "sessions": int(row.sessions),
        "responses": int(row.responses),
        "uploads": int(row.uploads),
        "firstSessionAt": _time(row.first_session_at),  # null for a configured experiment without sessions
        "lastSessionAt": _time(row.last_session_at),
        "levels": funnel(row),
        "daily": [
            dict(zip(("date", "newVisitors", "sessions", "responses"), (day.isoformat(), *by_day.get(day, (0, 0, 0)))))
            for day in days
        ],
    }


def _time(moment: datetime | None) -> str | None:
    return rfc3339(moment) if moment is not None else None


def _study(row) -> dict[str, Any]:
    """A configured experiment's figures (SPEC §14.7): its conditions in the configuration's
    order. Nothing else of the configuration (its codes are the researcher's secrets)."""
    config = row.config
    counted = row.conditions or {}
    conditions = []
    for condition in config.get("conditions") or []:
        found = counted.get(condition["name"], {})
        conditions.append(
            {
                "name": condition["name"],
                "quota": condition.get("quota"),
                **{figure: int(found.get(figure, 0)) for figure in ("places", "started", "completed", "abandoned")},
            }
        )
    return {
        "active": config.get("active", True),
        "started": int(row.started or 0),
        "completed": int(row.completed or 0),
        "abandoned": int(row.abandoned or 0),
        "testSessions": int(row.test_sessions or 0),
        "excluded": int(row.excluded or 0),
        "conditions": conditions,
        "outcomes": {name: int(n) for name, n in sorted((row.outcomes or {}).items())},
        "deliveries": {
            "delivered": int(row.delivered or 0),
            "pending": int(row.pending or 0),
            "failed": int(row.failed or 0),
        },
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
