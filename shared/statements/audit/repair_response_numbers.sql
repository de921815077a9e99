-- audit --repair: those responses take the number of their session (as register renumbers them).
UPDATE responses r SET visitor_number = s.visitor_number
FROM sessions s
WHERE s.id = r.session_id
  AND r.visitor_number IS DISTINCT FROM s.visitor_number
  AND r.created_at < now() - CAST(:min_age AS integer) * interval '1 second'
