"""The seed design's create_session, re-created for comparison: the same work
as shared.visitors.sessions.create_session (guest callers), done as separate statements,
each its own round trip, in one transaction:

  1. look the session up (a retry?)       SELECT ... FROM sessions WHERE id
  2. look the visitor up                  SELECT ... FROM guests WHERE key_hash
  3. take a number (no number yet)        SELECT nextval('visitor_number_seq')
  4. upsert the visitor                   INSERT INTO guests ... ON CONFLICT DO UPDATE
  5. insert the session                   INSERT INTO sessions ...

and the ceiling: one INSERT INTO sessions ... VALUES (nextval(...)) per session,
sent the cheapest way the product knows (shared.core.db.single_statement, no
BEGIN/COMMIT around it).
"""

from __future__ import annotations

import json
import uuid

from sqlalchemy import text
from sqlalchemy.engine import Engine

from shared.core.db import single_statement

_FIND_SESSION = text("SELECT id, visitor_number, guest_id FROM sessions WHERE id = CAST(:id AS uuid)")
_FIND_GUEST = text("SELECT id, visitor_number, claimed_by FROM guests WHERE key_hash = :key_hash")
_NEXTVAL = text("SELECT nextval('visitor_number_seq')")
_UPSERT_GUEST = text(
    """
    INSERT INTO guests (id, key_hash, visitor_number) VALUES (CAST(:id AS uuid), :key_hash, :number)
    ON CONFLICT (key_hash) DO UPDATE SET visitor_number = COALESCE(guests.visitor_number, EXCLUDED.visitor_number)
    RETURNING id, visitor_number
    """
)
_INSERT_SESSION = text(
    """
    INSERT INTO sessions (id, visitor_number, guest_id, experiment_id, metadata)
    VALUES (CAST(:id AS uuid), :number, CAST(:guest_id AS uuid), :experiment_id, CAST(:metadata AS jsonb))
    RETURNING id, visitor_number, created_at
    """
)
CEILING_SQL = """
    INSERT INTO sessions (id, visitor_number, experiment_id, metadata)
    VALUES (CAST(:id AS uuid), nextval('visitor_number_seq'), :experiment_id, CAST(:metadata AS jsonb))
"""
_CEILING = text(CEILING_SQL)


def seed_create_session(
    engine: Engine, key_hash: bytes, experiment_id: str | None = "bench", metadata: dict | None = None
) -> int | None:
    session_id = str(uuid.uuid4())
    with engine.begin() as conn:
        existing = conn.execute(_FIND_SESSION, {"id": session_id}).first()
        if existing is not None:
            return existing.visitor_number
        guest = conn.execute(_FIND_GUEST, {"key_hash": key_hash}).first()
        number = guest.visitor_number if guest is not None else None
        if number is None:
            number = conn.execute(_NEXTVAL).scalar_one()
        visitor = conn.execute(
            _UPSERT_GUEST, {"id": str(guest.id) if guest else str(uuid.uuid4()), "key_hash": key_hash, "number": number}
        ).one()
        conn.execute(
            _INSERT_SESSION,
            {
                "id": session_id,
                "number": visitor.visitor_number,
                "guest_id": str(visitor.id),
                "experiment_id": experiment_id,
                "metadata": json.dumps(metadata or {}),
            },
        ).one()
        return visitor.visitor_number


def ceiling_insert(engine: Engine, experiment_id: str | None = "bench") -> str:
    """One session inserted the cheapest way the product knows; its id."""
    session_id = str(uuid.uuid4())
    with single_statement(engine) as conn:
        conn.rows(_CEILING, {"id": session_id, "experiment_id": experiment_id, "metadata": "{}"})
    return session_id
