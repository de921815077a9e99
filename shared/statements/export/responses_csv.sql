-- export_data: responses.csv of the exported sessions (SPEC §10), streamed by COPY.
-- Read-only, in the export's snapshot; in no particular order.
COPY (
    SELECT r.id AS "responseId", r.session_id AS "sessionId", r.visitor_number AS "visitorNumber",
           csv_text(s.experiment_id) AS "experimentId", r.level AS "level",
           utc_text(r.created_at) AS "createdAt", csv_text(r.data::text) AS "data"
    FROM exported_sessions() s
    JOIN responses r ON r.session_id = s.id
) TO STDOUT WITH (FORMAT csv, HEADER)
