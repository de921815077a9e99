"""The researchers' trail: who exported or erased what, and when, in researcher_actions
(sql/007_researcher_actions.sql; docs/design/researcher-trail.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shared.core.db import single_statement, statement, transaction
from shared.core.encodings import compact_json, rfc3339

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

# The acts the table accepts (its CHECK): a function's name each. configure_experiment joins
# them with a migration that widens the CHECK (sql/017), and exclude_session.
ACTIONS = ("export_data", "erase_visitor", "configure_experiment", "exclude_session")
# How many acts get_researcher_actions answers at most, newest first.
LATEST = 100


@dataclass(frozen=True)
class Act:
    """One act of a researcher: its uid, the function, and the request's filters."""

    uid: str
    action: str
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"unknown researcher action {self.action!r}")

    def record_in(self, conn: Connection) -> None:
        """Write the act in the caller's transaction: it stands or falls with what it records."""
        conn.execute(
            statement("trail/record"), {"uid": self.uid, "action": self.action, "details": compact_json(self.details)}
        )

    def record(self, engine: Engine) -> None:
        """Write the act on its own, committed before the work it records begins (an export)."""
        with transaction(engine) as conn:
            self.record_in(conn)


def latest(engine: Engine, limit: int = LATEST) -> list[dict[str, Any]]:
    """The trail, newest first: the latest `limit` acts."""
    with single_statement(engine) as conn:
        found = conn.rows(statement("trail/latest"), {"limit": limit})
    return [
        {"id": row.id, "uid": row.uid, "action": row.action, "details": row.details, "at": rfc3339(row.at)}
        for row in found
    ]
