-- export_data: responses.csv of the exported sessions (SPEC §10), streamed by COPY.
-- Read-only, in the export's snapshot; sessions.csv's order of sessions, each session's responses
-- in the order they were stored (SPEC §14.6: createdAt strictly increases within a session).
COPY (
    SELECT r.id AS "responseId", r.session_id AS "sessionId", r.visitor_number AS "visitorNumber",
           csv_text(s.experiment_id) AS "experimentId", r.level AS "level",
           utc_text(r.created_at) AS "createdAt", csv_text(r.data::text) AS "data"
    FROM exported_sessions() s
    JOIN responses r ON r.session_id = s.id
    ORDER BY s.created_at, s.id, r.created_at, r.id
) TO STDOUT WITH (FORMAT csv, HEADER)
