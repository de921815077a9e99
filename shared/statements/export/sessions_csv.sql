-- export_data: sessions.csv (SPEC §10), each exported session with its response count, highest
-- level and upload count (its rows in `uploads`). Streamed by COPY; read-only, in the export's
-- snapshot; oldest first.
COPY (
    SELECT s.id AS "sessionId", s.visitor_number AS "visitorNumber", csv_text(s.experiment_id) AS "experimentId",
           (s.user_id IS NOT NULL)::text AS "registered", utc_text(s.created_at) AS "createdAt",
           count(r.session_id) AS "responseCount", max(r.level) AS "maxLevel",
           (SELECT count(*) FROM uploads u WHERE u.session_id = s.id) AS "uploadCount",
           csv_text(s.metadata::text) AS "metadata"
    FROM exported_sessions() s
    LEFT JOIN responses r ON r.session_id = s.id
    GROUP BY s.id, s.visitor_number, s.experiment_id, s.user_id, s.created_at, s.metadata
    ORDER BY s.created_at, s.id
) TO STDOUT WITH (FORMAT csv, HEADER)
