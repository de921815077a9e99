-- export_data: responses.csv of the exported sessions (SPEC §10), streamed by COPY.
-- Read-only, in the export's snapshot. Sessions in sessions.csv's order, each session's responses
-- in the order they were stored (SPEC §14.6: createdAt strictly increases within a session). The
-- order comes from a nested loop over the sorted sessions, each session's responses sorted on
-- their own (LATERAL), not from one ORDER BY over every response: that sort would hold back the
-- first row until every response is read (12 s at a million), and the export streams.
COPY (
    SELECT r.id AS "responseId", r.session_id AS "sessionId", r.visitor_number AS "visitorNumber",
           csv_text(s.experiment_id) AS "experimentId", r.level AS "level",
           utc_text(r.created_at) AS "createdAt", csv_text(r.data::text) AS "data"
    FROM (SELECT * FROM exported_sessions() ORDER BY created_at, id) s
    CROSS JOIN LATERAL (SELECT * FROM responses WHERE session_id = s.id ORDER BY created_at, id) r
) TO STDOUT WITH (FORMAT csv, HEADER)
