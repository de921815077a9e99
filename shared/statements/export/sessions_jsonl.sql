-- export_data: sessions as JSON Lines (SPEC §10), as sessions_csv.sql counts them, one object per
-- line, streamed by COPY. COPY's text format doubles every backslash, which
-- shared/research/export.py undoes. Read-only, in the export's snapshot; oldest first.
COPY (
    SELECT row_to_json(line)
    FROM (SELECT s.id AS "sessionId", s.visitor_number AS "visitorNumber", s.experiment_id AS "experimentId",
                 (s.user_id IS NOT NULL) AS "registered", utc_text(s.created_at) AS "createdAt",
                 count(r.session_id) AS "responseCount", max(r.level) AS "maxLevel",
                 (SELECT count(*) FROM uploads u WHERE u.session_id = s.id) AS "uploadCount",
                 s.metadata AS "metadata"
          FROM exported_sessions() s
          LEFT JOIN responses r ON r.session_id = s.id
          GROUP BY s.id, s.visitor_number, s.experiment_id, s.user_id, s.created_at, s.metadata
          ORDER BY s.created_at, s.id) line
) TO STDOUT
