"""Give visitor numbers to what was created while numbering was failing.

    python -m shared.backfill            # uses DATABASE_URL or the Cloud SQL settings

When nextval('visitor_number_seq') fails, create_session still creates the
session, with visitor_number NULL (SPEC §3). Once numbering works again, this
command numbers every such visitor (an unclaimed guest, or a user) that has a
session without a number, then sets the visitor's number on those sessions and
on their responses.

Safe to run at any time, as often as wanted, beside live traffic: it works in
small transactions of at most `batch` visitors, takes row locks in the order the
functions take them (visitor, sessions, responses), and skips (SKIP LOCKED) a
visitor a request is busy with rather than waiting; a later run picks it up.
A visitor that already has a number keeps it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import sqlalchemy
from sqlalchemy import text
from sqlalchemy.engine import Engine

from shared.db import describe, transaction
from shared.logs import get_logger
from shared.visitors import NEXT_NUMBER

log = get_logger("backfill")

DEFAULT_BATCH = 100

# Up to `batch` visitors with a session that has no number, locked; one that a
# request holds (create_session, register) is skipped, not waited for.
_PICK = {
    "guests": text(
        """
        SELECT g.id, g.visitor_number FROM guests g
        WHERE g.claimed_by IS NULL
          AND EXISTS (SELECT 1 FROM sessions s
                      WHERE s.guest_id = g.id AND s.user_id IS NULL AND s.visitor_number IS NULL)
        ORDER BY g.created_at, g.id
        LIMIT :batch
        FOR UPDATE SKIP LOCKED
        """
    ),
    "users": text(
        """
        SELECT u.id, u.visitor_number FROM users u
        WHERE EXISTS (SELECT 1 FROM sessions s WHERE s.user_id = u.id AND s.visitor_number IS NULL)
        ORDER BY u.created_at, u.id
        LIMIT :batch
        FOR UPDATE SKIP LOCKED
        """
    ),
}

# Oldest first, so that numbers follow first sight: PostgreSQL evaluates a
# volatile output expression (nextval) after the ORDER BY.
_NUMBER = {
    "guests": text(
        f"""
        UPDATE guests g SET visitor_number = numbered.visitor_number
        FROM (SELECT id, {NEXT_NUMBER} AS visitor_number FROM guests
              WHERE id = ANY(CAST(:ids AS uuid[])) AND visitor_number IS NULL
              ORDER BY created_at, id) AS numbered
        WHERE g.id = numbered.id
        RETURNING g.id, g.visitor_number
        """
    ),
    "users": text(
        f"""
        UPDATE users u SET visitor_number = numbered.visitor_number, updated_at = now()
        FROM (SELECT id, {NEXT_NUMBER} AS visitor_number FROM users
              WHERE id = ANY(CAST(:ids AS text[])) AND visitor_number IS NULL
              ORDER BY created_at, id) AS numbered
        WHERE u.id = numbered.id
        RETURNING u.id, u.visitor_number
        """
    ),
}

# Statements of their own, in this order: the sessions' row locks make a
# submit_response in flight finish first, so the responses statement (with its
# later snapshot) sees its response.
_FILL_SESSIONS = {
    "guests": text(
        """
        UPDATE sessions s SET visitor_number = g.visitor_number, updated_at = now()
        FROM guests g
        WHERE g.id = ANY(CAST(:ids AS uuid[])) AND s.guest_id = g.id AND s.user_id IS NULL
          AND s.visitor_number IS NULL AND g.visitor_number IS NOT NULL
        """
    ),
    "users": text(
        """
        UPDATE sessions s SET visitor_number = u.visitor_number, updated_at = now()
        FROM users u
        WHERE u.id = ANY(CAST(:ids AS text[])) AND s.user_id = u.id
          AND s.visitor_number IS NULL AND u.visitor_number IS NOT NULL
        """
    ),
}

_FILL_RESPONSES = {
    "guests": text(
        """
        UPDATE responses r SET visitor_number = s.visitor_number
        FROM sessions s
        WHERE s.guest_id = ANY(CAST(:ids AS uuid[])) AND s.user_id IS NULL
          AND r.session_id = s.id AND r.visitor_number IS NULL AND s.visitor_number IS NOT NULL
        """
    ),
    "users": text(
        """
        UPDATE responses r SET visitor_number = s.visitor_number
        FROM sessions s
        WHERE s.user_id = ANY(CAST(:ids AS text[]))
          AND r.session_id = s.id AND r.visitor_number IS NULL AND s.visitor_number IS NOT NULL
        """
    ),
}

# What is left for a later run: visitors that were busy (locked) during this one.
_PENDING = text(
    """
    SELECT (SELECT count(*) FROM guests g WHERE g.claimed_by IS NULL AND EXISTS (
                SELECT 1 FROM sessions s
                WHERE s.guest_id = g.id AND s.user_id IS NULL AND s.visitor_number IS NULL))
         + (SELECT count(*) FROM users u WHERE EXISTS (
                SELECT 1 FROM sessions s WHERE s.user_id = u.id AND s.visitor_number IS NULL))
    """
)


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
            done = (f"numbered {_count(self.guests_numbered, 'guest')} and {_count(self.users_numbered, 'user')}; "
                    f"filled {_count(self.sessions_filled, 'session')} and "
                    f"{_count(self.responses_filled, 'response')}")
        left = (f"; {_count(self.pending, 'visitor')} busy, run it again" if self.pending
                else "; no session is left without a number")
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
        summary.pending = conn.execute(_PENDING).scalar_one()
    return summary


def _backfill_batch(engine: Engine, kind: str, batch: int, summary: Summary) -> bool:
    """One transaction over up to `batch` visitors of one kind; False when none was left to pick."""
    with transaction(engine) as conn:
        picked = conn.execute(_PICK[kind], {"batch": batch}).all()
        if not picked:
            return False
        ids = [str(row.id) for row in picked]
        numbered = conn.execute(_NUMBER[kind], {"ids": ids}).all()
        sessions = conn.execute(_FILL_SESSIONS[kind], {"ids": ids}).rowcount
        responses = conn.execute(_FILL_RESPONSES[kind], {"ids": ids}).rowcount
    if kind == "guests":
        summary.guests_numbered += len(numbered)
    else:
        summary.users_numbered += len(numbered)
    summary.sessions_filled += sessions
    summary.responses_filled += responses
    for row in numbered:
        log.debug("numbered visitor", extra={"fields": {"kind": kind[:-1], "id": str(row.id),
                                                       "visitorNumber": row.visitor_number}})
    # Every picked visitor now has a number and no session without one, so the
    # next pick finds others; should nothing have changed, stop rather than spin.
    return bool(numbered or sessions)


def main() -> int:
    from shared.config import ConfigError
    from shared.db import get_engine
    from shared.errors import ServiceError

    try:
        summary = backfill(get_engine())
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 2
    except ServiceError as error:  # the database is unavailable
        print(f"backfill failed: {error.message}", file=sys.stderr)
        return 1
    except sqlalchemy.exc.SQLAlchemyError as error:
        print(f"backfill failed: {describe(error)}", file=sys.stderr)
        return 1
    print(summary.line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
