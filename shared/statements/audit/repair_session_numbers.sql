-- audit --repair: those sessions take the number of their owner (as audit/session_numbers.sql
-- finds it); their responses and uploads rows follow in the statements after this one.
WITH RECURSIVE chain (from_number, to_number, depth) AS (
    SELECT from_number, to_number, 1 FROM visitor_merges
    UNION ALL
    SELECT c.from_number, m.to_number, c.depth + 1
    FROM chain c JOIN visitor_merges m ON m.from_number = c.to_number
    WHERE c.depth < 64
),
resolved AS (
    SELECT DISTINCT ON (from_number) from_number, to_number FROM chain ORDER BY from_number, depth DESC
),
owned AS (
    SELECT s.id,
           COALESCE(u.visitor_number, CASE WHEN s.user_id IS NULL THEN COALESCE(r.to_number, g.visitor_number) END)
               AS owner_number
    FROM sessions s
    LEFT JOIN users u ON u.id = s.user_id
    LEFT JOIN guests g ON g.id = s.guest_id
    LEFT JOIN resolved r ON r.from_number = g.visitor_number
    WHERE s.created_at < now() - CAST(:min_age AS integer) * interval '1 second'
)
UPDATE sessions s SET visitor_number = owned.owner_number, updated_at = now()
FROM owned
WHERE owned.id = s.id AND owned.owner_number IS NOT NULL AND s.visitor_number IS DISTINCT FROM owned.owner_number
RETURNING s.id
