-- submit_response by a guest: as submit_response_user.sql (outcomes, locks, the order of a
-- session's responses), with the guest's ownership: a guest owns its sessions until a user
-- claims it (register sets user_id on every one of them in the same transaction as claimed_by).
WITH target AS (
    SELECT id, visitor_number, user_id, guest_id, completed_at
    FROM sessions WHERE id = CAST(:session_id AS uuid)
    FOR SHARE
), owned AS (
    SELECT id, visitor_number, completed_at FROM target
    WHERE user_id IS NULL
      AND guest_id = (SELECT g.id FROM guests g WHERE g.key_hash = :key_hash AND g.claimed_by IS NULL)
), items AS (
    SELECT CAST(item ->> 'responseId' AS uuid) AS id, CAST(item ->> 'level' AS integer) AS level,
           item -> 'data' AS data, position
    FROM jsonb_array_elements(CAST(:items AS jsonb)) WITH ORDINALITY AS i (item, position)
), stored AS (
    SELECT i.position, r.id, r.session_id, r.visitor_number, r.level, r.created_at
    FROM items i JOIN responses r ON r.id = i.id
    WHERE EXISTS (SELECT 1 FROM owned)
), new AS (
    SELECT * FROM items i WHERE NOT EXISTS (SELECT 1 FROM stored s WHERE s.id = i.id)
), writable AS (
    SELECT o.* FROM owned o
    WHERE o.completed_at IS NULL AND EXISTS (SELECT 1 FROM new)
      AND NOT EXISTS (SELECT 1 FROM stored s WHERE s.session_id <> o.id)
), latest AS MATERIALIZED (
    SELECT lock_response_order(id) AS created_at FROM writable
), inserted AS (
    INSERT INTO responses (id, session_id, visitor_number, level, data, created_at)
    SELECT n.id, w.id, w.visitor_number, n.level, n.data,
           greatest(now(), l.created_at) + n.position * interval '1 microsecond'
    FROM new n CROSS JOIN writable w CROSS JOIN latest l
    RETURNING id, session_id, visitor_number, level, created_at
)
SELECT 'created' AS outcome, n.position, r.id, r.session_id, r.visitor_number, r.level, r.created_at
FROM inserted r JOIN new n ON n.id = r.id
UNION ALL
SELECT 'exists', position, id, session_id, visitor_number, level, created_at FROM stored
UNION ALL
SELECT 'completed', NULL, NULL, NULL, NULL, NULL, NULL FROM owned
WHERE completed_at IS NOT NULL AND EXISTS (SELECT 1 FROM new)
UNION ALL
SELECT 'denied', NULL, NULL, NULL, NULL, NULL, NULL FROM target WHERE NOT EXISTS (SELECT 1 FROM owned)
UNION ALL
SELECT 'missing', NULL, NULL, NULL, NULL, NULL, NULL WHERE NOT EXISTS (SELECT 1 FROM target)
