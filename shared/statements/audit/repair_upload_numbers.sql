-- audit --repair: the uploads rows of the sessions just renumbered take the number of their session.
UPDATE uploads up SET visitor_number = s.visitor_number
FROM sessions s
WHERE s.id = up.session_id AND s.id = ANY(CAST(:session_ids AS uuid[]))
  AND up.visitor_number IS DISTINCT FROM s.visitor_number
