-- audit --repair: those sessions (as audit/session_numbers.sql finds them) take their owner's
-- number; their responses and uploads rows follow in the statements after this one.
UPDATE sessions s SET visitor_number = o.owner_number, updated_at = now()
FROM session_owner_numbers o
WHERE o.id = s.id AND o.created_at < now() - CAST(:min_age AS integer) * interval '1 second'
  AND o.owner_number IS NOT NULL AND s.visitor_number IS DISTINCT FROM o.owner_number
RETURNING s.id
