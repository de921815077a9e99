-- backfill: the uploads of the picked users' sessions take their session's number.
UPDATE uploads u SET visitor_number = s.visitor_number
FROM sessions s
WHERE s.user_id = ANY(CAST(:ids AS text[]))
  AND u.session_id = s.id AND u.visitor_number IS NULL AND s.visitor_number IS NOT NULL
