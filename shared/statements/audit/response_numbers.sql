-- audit: the responses (older than min_age seconds) whose visitor number is not that of their session.
SELECT count(*) AS found
FROM responses r JOIN sessions s ON s.id = r.session_id
WHERE r.visitor_number IS DISTINCT FROM s.visitor_number
  AND r.created_at < now() - CAST(:min_age AS integer) * interval '1 second'
