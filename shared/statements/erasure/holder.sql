-- erase_visitor: who holds a visitor number now. A number merged into another
-- (visitor_merges) resolves to the one it was merged into; a user comes before a
-- guest it claimed (both keep the number when a user took its guest's). Only a
-- guest nobody claimed is its own holder.
WITH current_number AS (
    SELECT coalesce((SELECT to_number FROM visitor_merges WHERE from_number = :number), :number) AS number
), holders AS (
    SELECT 1 AS rank, u.id AS user_id, NULL::bytea AS key_hash
    FROM users u JOIN current_number c ON u.visitor_number = c.number
    UNION ALL
    SELECT 2, NULL, g.key_hash
    FROM guests g JOIN current_number c ON g.visitor_number = c.number
    WHERE g.claimed_by IS NULL
)
SELECT user_id, key_hash FROM holders ORDER BY rank LIMIT 1
