-- audit --repair: those sessions take the number of their owner; their responses and uploads rows
-- follow in the statements after this one (as register renumbers them).
UPDATE sessions s SET visitor_number = owner.number, updated_at = now()
FROM (
    SELECT s2.id, COALESCE(u.visitor_number, CASE WHEN s2.user_id IS NULL THEN g.visitor_number END) AS number
    FROM sessions s2
    LEFT JOIN users u ON u.id = s2.user_id
    LEFT JOIN guests g ON g.id = s2.guest_id
    WHERE s2.created_at < now() - CAST(:min_age AS integer) * interval '1 second'
) owner
WHERE owner.id = s.id AND owner.number IS NOT NULL AND s.visitor_number IS DISTINCT FROM owner.number
RETURNING s.id
