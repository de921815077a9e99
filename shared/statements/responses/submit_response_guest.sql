-- submit_response by a guest: as submit_response_user.sql (outcomes, locks), with
-- the guest's ownership: a guest owns its sessions until a user claims it (register
-- sets user_id on every one of them in the same transaction as claimed_by).
WITH target AS (
    SELECT id, visitor_number, user_id, guest_id
    FROM sessions WHERE id = CAST(:session_id AS uuid)
    FOR SHARE
), owned AS (
    SELECT id, visitor_number FROM target
    WHERE user_id IS NULL
      AND guest_id = (SELECT g.id FROM guests g WHERE g.key_hash = :key_hash AND g.claimed_by IS NULL)
), inserted AS (
    INSERT INTO responses (id, session_id, visitor_number, level, data)
    SELECT CAST(:response_id AS uuid), id, visitor_number, CAST(:level AS integer), CAST(:data AS jsonb)
    FROM owned
    ON CONFLICT (id) DO NOTHING
    RETURNING id, session_id, visitor_number, level, created_at
)
SELECT 'created' AS outcome, id, session_id, visitor_number, level, created_at FROM inserted
UNION ALL
SELECT 'exists', r.id, r.session_id, r.visitor_number, r.level, r.created_at
FROM responses r
WHERE r.id = CAST(:response_id AS uuid) AND EXISTS (SELECT 1 FROM owned)
  AND NOT EXISTS (SELECT 1 FROM inserted)
UNION ALL
SELECT 'denied', NULL, NULL, NULL, NULL, NULL FROM target WHERE NOT EXISTS (SELECT 1 FROM owned)
UNION ALL
SELECT 'missing', NULL, NULL, NULL, NULL, NULL WHERE NOT EXISTS (SELECT 1 FROM target)
