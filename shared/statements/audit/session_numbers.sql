-- audit: the sessions (older than min_age seconds) whose visitor number is not their owner number:
-- the user number when the session has one, otherwise the guest number as it resolves through
-- visitor_merges (a session left behind by a claim carries the number its guest was merged into).
-- An owner without a number yet is for make backfill to number, not a disagreement.
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
    SELECT s.id, s.visitor_number,
           COALESCE(u.visitor_number, CASE WHEN s.user_id IS NULL THEN COALESCE(r.to_number, g.visitor_number) END)
               AS owner_number
    FROM sessions s
    LEFT JOIN users u ON u.id = s.user_id
    LEFT JOIN guests g ON g.id = s.guest_id
    LEFT JOIN resolved r ON r.from_number = g.visitor_number
    WHERE s.created_at < now() - CAST(:min_age AS integer) * interval '1 second'
)
SELECT count(*) AS found FROM owned
WHERE owner_number IS NOT NULL AND visitor_number IS DISTINCT FROM owner_number
