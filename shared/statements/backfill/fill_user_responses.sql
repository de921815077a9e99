-- backfill: the responses of the picked users' sessions take their session's number.
UPDATE responses r SET visitor_number = s.visitor_number
FROM sessions s
WHERE s.user_id = ANY(CAST(:ids AS text[]))
  AND r.session_id = s.id AND r.visitor_number IS NULL AND s.visitor_number IS NOT NULL
