-- export_data: the exported sessions with their response counts and highest levels,
-- for sessions.csv and uploads.csv (shared/research/export.py adds what Firestore holds: the
-- uploads). Every column as text, ready to be written. Read through a server-side
-- cursor, in the export's snapshot; oldest first.
SELECT s.id::text AS session_id, s.visitor_number::text AS visitor_number, s.experiment_id,
       (s.user_id IS NOT NULL) AS registered, utc_text(s.created_at) AS created_at,
       count(r.session_id) AS response_count, max(r.level) AS max_level, s.metadata::text AS metadata
FROM exported_sessions() s
LEFT JOIN responses r ON r.session_id = s.id
GROUP BY s.id, s.visitor_number, s.experiment_id, s.user_id, s.created_at, s.metadata
ORDER BY s.created_at, s.id
