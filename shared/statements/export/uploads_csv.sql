-- export_data: uploads.csv (SPEC §10), the `uploads` rows of the exported sessions (their
-- visitorNumber the row's own, as a response's is; experimentId the session's). Streamed by
-- COPY; read-only, in the export's snapshot; session by session as sessions.csv, then in the
-- order the files were made.
COPY (
    SELECT u.id AS "uploadId", u.session_id AS "sessionId", u.visitor_number AS "visitorNumber",
           csv_text(s.experiment_id) AS "experimentId", csv_text(u.name) AS "name",
           csv_text(u.content_type) AS "contentType", u.size AS "size", utc_text(u.uploaded_at) AS "uploadedAt",
           csv_text('gs://' || u.bucket || '/' || u.name) AS "gsUri"
    FROM exported_sessions() s
    JOIN uploads u ON u.session_id = s.id
    ORDER BY s.created_at, s.id, u.uploaded_at, u.name, u.generation
) TO STDOUT WITH (FORMAT csv, HEADER)
