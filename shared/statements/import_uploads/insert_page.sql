-- import_uploads: one page of Firestore's `uploads` documents (a JSON array) into table
-- uploads, each at most once (the row's id is the document's id), with its session's current
-- visitor number, which follows merges, not the document's. A document whose session was
-- erased or never existed is left out. The page's sessions are held FOR SHARE, as the storage
-- trigger holds its one (uploads/session.sql): an erasure waits for the page and then deletes
-- its rows too, and a merge that renumbers a session waits and then renumbers them.
-- One row: what became of the page's documents.
WITH page AS (
    SELECT * FROM jsonb_to_recordset(CAST(:page AS jsonb)) AS page (
        id TEXT, session_id UUID, bucket TEXT, name TEXT, generation BIGINT, content_type TEXT,
        size BIGINT, uploaded_at TIMESTAMPTZ, recorded_at TIMESTAMPTZ
    )
),
live AS (
    SELECT s.id, s.visitor_number FROM sessions s
    WHERE s.id IN (SELECT session_id FROM page)
    ORDER BY s.id
    FOR SHARE OF s
),
inserted AS (
    INSERT INTO uploads (
        id, session_id, visitor_number, bucket, name, generation, content_type, size, uploaded_at, recorded_at
    )
    SELECT p.id, p.session_id, l.visitor_number, p.bucket, p.name, p.generation, p.content_type, p.size,
           p.uploaded_at, COALESCE(p.recorded_at, now())
    FROM page p JOIN live l ON l.id = p.session_id
    ON CONFLICT (id) DO NOTHING
    RETURNING id
)
SELECT count(i.id) AS imported,
       count(*) FILTER (WHERE l.id IS NOT NULL AND i.id IS NULL) AS present,
       count(*) FILTER (WHERE l.id IS NULL AND e.session_id IS NOT NULL) AS erased,
       count(*) FILTER (WHERE l.id IS NULL AND e.session_id IS NULL) AS unknown
FROM page p
LEFT JOIN live l ON l.id = p.session_id
LEFT JOIN inserted i ON i.id = p.id
LEFT JOIN erased_sessions e ON e.session_id = p.session_id
