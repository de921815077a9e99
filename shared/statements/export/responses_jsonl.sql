-- export_data: responses as JSON Lines (SPEC §10), one object per line, streamed by
-- COPY. COPY's text format doubles every backslash, which shared/research/export.py undoes.
-- Read-only, in the export's snapshot; in responses_csv.sql's order, made the same way.
COPY (
    SELECT row_to_json(line)
    FROM (SELECT r.id AS "responseId", r.session_id AS "sessionId", r.visitor_number AS "visitorNumber",
                 s.experiment_id AS "experimentId", r.level AS "level",
                 utc_text(r.created_at) AS "createdAt", r.data AS "data"
          FROM (SELECT * FROM exported_sessions() ORDER BY created_at, id) s
          CROSS JOIN LATERAL (SELECT * FROM responses WHERE session_id = s.id ORDER BY created_at, id) r) line
) TO STDOUT
