-- Withdrawal: the erasure ledger and the tombstones of erased sessions (SPEC §11).
--
-- An erasure deletes a visitor's rows in PostgreSQL in one transaction that also
-- writes its `erasures` row and one `erased_sessions` row per deleted session. The
-- Firestore and Storage parts follow; each is marked here only once done, so a
-- pending erasure can always be finished (`python -m shared.erasure resume`).
-- Neither table holds personal data: ids, pseudonymous visitor numbers, counts
-- and times. They are never deleted from: the ledger is the record that the
-- request was honoured, and a tombstone keeps an erased sessionId from ever being
-- created again or an upload event from recreating its data.

CREATE TABLE erasures (
    id                  UUID PRIMARY KEY,
    -- The visitor's number when it was erased (NULL for a visitor never numbered),
    -- and the other numbers folded into it (visitor_merges, claimed guests): all of
    -- them are retired, and their Firestore visitors/{n} documents are deleted.
    visitor_number      BIGINT,
    merged_numbers      BIGINT[] NOT NULL DEFAULT '{}',
    requested_by        TEXT NOT NULL CHECK (requested_by IN ('visitor', 'researcher')),
    requested_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    sql_erased_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    firestore_erased_at TIMESTAMPTZ,
    storage_erased_at   TIMESTAMPTZ,
    completed_at        TIMESTAMPTZ,
    -- What was deleted: rows at once; Firestore documents and Storage objects when
    -- their part is done (NULL until then).
    sessions            INTEGER NOT NULL,
    responses           INTEGER NOT NULL,
    uploads             INTEGER,
    objects             INTEGER,
    -- Tries of the Firestore and Storage parts that did not finish, and when the
    -- last one ran: what an operator looks at when an erasure stays pending.
    attempts            INTEGER NOT NULL DEFAULT 0,
    last_attempt_at     TIMESTAMPTZ,
    CONSTRAINT erasures_complete_when_both_parts_are CHECK (
        (completed_at IS NULL) = (firestore_erased_at IS NULL OR storage_erased_at IS NULL))
);
-- `resume` finds what is pending, oldest first.
CREATE INDEX erasures_pending_idx ON erasures (requested_at) WHERE completed_at IS NULL;

CREATE TABLE erased_sessions (
    session_id UUID PRIMARY KEY,
    erasure_id UUID NOT NULL REFERENCES erasures(id),
    erased_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX erased_sessions_erasure_id_idx ON erased_sessions (erasure_id);

-- Who may erase. visitor_functions (every function) may read the tombstones, as
-- create_session and on_upload_finalized do, and nothing more here: it still
-- cannot delete anything. visitor_erasure - the group role of the database user
-- that delete_my_data, erase_visitor and `python -m shared.erasure` run as - may
-- do what the functions do, delete a visitor's rows, and write the ledger, but
-- never delete from it (the ledger is the record that a request was honoured).
-- `python -m shared.migrate --erasure-user NAME` makes a login user a member.
GRANT SELECT ON erased_sessions TO visitor_functions;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'visitor_erasure') THEN
        CREATE ROLE visitor_erasure NOLOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;  -- created by a concurrent migration of another database (as in 002_roles.sql)
END
$$;

GRANT visitor_functions TO visitor_erasure;
GRANT SELECT, INSERT, UPDATE ON erasures, erased_sessions TO visitor_erasure;
GRANT DELETE ON users, guests, sessions, responses, visitor_merges TO visitor_erasure;
