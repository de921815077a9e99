-- audit: the sessions (older than min_age seconds) whose visitor number is not their owner number:
-- the user number when the session has one, otherwise the guest number. An owner without a number yet
-- is for make backfill to number, not a disagreement.
SELECT count(*) AS found
FROM sessions s
LEFT JOIN users u ON u.id = s.user_id
LEFT JOIN guests g ON g.id = s.guest_id
WHERE COALESCE(u.visitor_number, CASE WHEN s.user_id IS NULL THEN g.visitor_number END) IS NOT NULL
  AND s.visitor_number IS DISTINCT FROM COALESCE(u.visitor_number, CASE WHEN s.user_id IS NULL THEN g.visitor_number END)
  AND s.created_at < now() - CAST(:min_age AS integer) * interval '1 second'
