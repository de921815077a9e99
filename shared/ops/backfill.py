"""Give visitor numbers to what was created while numbering was failing
(`python -m shared.backfill`; safe beside live traffic: docs/design/database.md)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine

from shared.core.db import statement, transaction
from shared.core.logs import get_logger

log = get_logger("backfill")

DEFAULT_BATCH = 100

# shared/statements/backfill/*.sql for each kind of visitor, run in this order in
# one transaction per batch: pick (lock), number, fill sessions, fill responses, fill uploads.
_STATEMENTS = {
    "guests": (
        "backfill/pick_guests",
        "backfill/number_guests",
        "backfill/fill_guest_sessions",
        "backfill/fill_guest_responses",
        "backfill/fill_guest_uploads",
    ),
    "users": (
        "backfill/pick_users",
        "backfill/number_users",
        "backfill/fill_user_sessions",
        "backfill/fill_user_responses",
        "backfill/fill_user_uploads",
    ),
}


@dataclass
class Summary:
    """What one run did."""

    guests_numbered: int = 0
    users_numbered: int = 0
    sessions_filled: int = 0
    responses_filled: int = 0
    pending: int = 0

    def line(self) -> str:
        if not (self.guests_numbered or self.users_numbered or self.sessions_filled or self.responses_filled):
            done = "nothing to do"
        else:
            done = (
                f"numbered {_count(self.guests_numbered, 'guest')} and {_count(self.users_numbered, 'user')}; "
                f"filled {_count(self.sessions_filled, 'session')} and "
                f"{_count(self.responses_filled, 'response')}"
            )
        left = (
            f"; {_count(self.pending, 'visitor')} busy, run it again"
            if self.pending
            else "; no session is left without a number"
        )
        return f"backfill: {done}{left}"


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")


def backfill(engine: Engine, batch: int = DEFAULT_BATCH) -> Summary:
    """Number visitors whose sessions have no number, and fill those sessions and responses."""
    summary = Summary()
    for kind in ("guests", "users"):
        while _backfill_batch(engine, kind, batch, summary):
            pass
    with transaction(engine) as conn:
        summary.pending = conn.execute(statement("backfill/pending")).scalar_one()
    return summary


def _backfill_batch(engine: Engine, kind: str, batch: int, summary: Summary) -> bool:
    """One transaction over up to `batch` visitors of one kind; False when none was left to pick."""
    pick, number, fill_sessions, fill_responses, fill_uploads = _STATEMENTS[kind]
    with transaction(engine) as conn:
        picked = conn.execute(statement(pick), {"batch": batch}).all()
        if not picked:
            return False
        ids = [str(row.id) for row in picked]
        numbered = conn.execute(statement(number), {"ids": ids}).all()
        sessions = conn.execute(statement(fill_sessions), {"ids": ids}).rowcount
        responses = conn.execute(statement(fill_responses), {"ids": ids}).rowcount
        conn.execute(statement(fill_uploads), {"ids": ids})
    if kind == "guests":
        summary.guests_numbered += len(numbered)
    else:
        summary.users_numbered += len(numbered)
    summary.sessions_filled += sessions
    summary.responses_filled += responses
    # No id in the log: a user's id is their Firebase uid (only the count and the numbers are said).
    if numbered:
        log.debug(
            "numbered %s",
            _count(len(numbered), kind[:-1]),
            extra={"fields": {"visitorNumbers": [row.visitor_number for row in numbered]}},
        )
    # Every picked visitor now has a number and no session without one, so the
    # next pick finds others; should nothing have changed, stop rather than spin.
    return bool(numbered or sessions)
