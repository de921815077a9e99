-- export_data: responses as JSON Lines (SPEC §10), one object per line, streamed by
-- COPY. COPY's text format doubles every backslash, which shared/research/export.py undoes.
-- Read-only, in the export's snapshot; sessions.csv's order of sessions, each session's responses
-- in the order they were stored (SPEC §14.6: createdAt strictly increases within a session).
COPY (
    SELECT row_to_json(line)
    FROM (SELECT r.id AS "responseId", r.session_id AS "sessionId", r.visitor_number AS "visitorNumber",
                 s.experiment_id AS "experimentId", r.level AS "level",
                 utc_text(r.created_at) AS "createdAt", r.data AS "data"
          FROM exported_sessions() s
          JOIN responses r ON r.session_id = s.id
          ORDER BY s.created_at, s.id, r.created_at, r.id) line
) TO STDOUT
