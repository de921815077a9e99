-- create_upload_ticket by a guest: whether the session is the guest's, in one row:
--   owned   - the guest owns it (no user has claimed the guest; register moves its sessions);
--   denied  - another visitor's session;
--   missing - no such session (never made, or erased).
WITH target AS (
    SELECT id, user_id, guest_id FROM sessions WHERE id = CAST(:session_id AS uuid)
), owned AS (
    SELECT id FROM target
    WHERE user_id IS NULL
      AND guest_id = (SELECT g.id FROM guests g WHERE g.key_hash = :key_hash AND g.claimed_by IS NULL)
)
SELECT 'owned' AS outcome FROM owned
UNION ALL
SELECT 'denied' FROM target WHERE NOT EXISTS (SELECT 1 FROM owned)
UNION ALL
SELECT 'missing' WHERE NOT EXISTS (SELECT 1 FROM target)
