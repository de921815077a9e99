-- One record of uploads in PostgreSQL: the storage trigger records each upload here, in the
-- transaction in which it holds its session, at most once per uploadId (the id of one bucket,
-- name and generation, as the Firestore document of the same upload). Its visitor_number
-- follows merges as the session's does (register renumbers it with the session's responses).
-- Statistics, exports, export_my_data, get_visitor and erasure's counts read uploads from here,
-- in the same snapshot as the other tables. Uploads recorded before this table existed are
-- brought in by a one-time command that docs/operations.md names.
CREATE TABLE uploads (
    id TEXT PRIMARY KEY,
    session_id UUID NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    visitor_number BIGINT,
    bucket TEXT NOT NULL,
    name TEXT NOT NULL,
    generation BIGINT NOT NULL,
    content_type TEXT,
    size BIGINT NOT NULL DEFAULT 0,
    uploaded_at TIMESTAMPTZ NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX uploads_session_id_idx ON uploads (session_id);
CREATE INDEX uploads_visitor_number_idx ON uploads (visitor_number);

-- The trigger inserts (ON CONFLICT DO NOTHING: redeliveries), register renumbers; nobody of
-- the functions deletes: an erasure's DELETE of the session cascades.
GRANT SELECT, INSERT, UPDATE ON uploads TO visitor_functions;
GRANT DELETE ON uploads TO visitor_erasure;
