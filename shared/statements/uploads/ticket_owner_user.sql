-- create_upload_ticket by a registered user or an anonymous account: whether the session is the
-- caller's, in one row (as responses/submit_response_user.sql judges it):
--   owned   - the session carries the caller's id (its own, or a claimed guest's);
--   denied  - another visitor's session;
--   missing - no such session (never made, or erased);
--   claimed - the caller is an anonymous account a signed-in account has claimed (SPEC §13).
WITH target AS (
    SELECT id, user_id FROM sessions WHERE id = CAST(:session_id AS uuid)
), claimed AS (
    SELECT 1 FROM users WHERE id = :user_id AND claimed_by IS NOT NULL
), owned AS (
    SELECT id FROM target WHERE user_id = :user_id AND NOT EXISTS (SELECT 1 FROM claimed)
)
SELECT 'owned' AS outcome FROM owned
UNION ALL
SELECT 'denied' FROM target WHERE NOT EXISTS (SELECT 1 FROM owned) AND NOT EXISTS (SELECT 1 FROM claimed)
UNION ALL
SELECT 'missing' WHERE NOT EXISTS (SELECT 1 FROM target) AND NOT EXISTS (SELECT 1 FROM claimed)
UNION ALL
SELECT 'claimed' FROM claimed
