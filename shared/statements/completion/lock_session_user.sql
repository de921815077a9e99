-- complete_session by a registered user: lock the session FOR UPDATE (submit_response takes it
-- FOR SHARE: a response being stored finishes before this returns, and none starts until the
-- completion commits) and say in exactly one row whose it is, as submit_response_user.sql:
--   missing - no such session; denied - not the caller's; claimed - the caller is an anonymous
--   account that a signed-in account has claimed; owned - the caller's, with what completing
--   needs: the experiment's configuration (none for a free label), the platform ids the session
--   was started with, and the completion time (the transaction's).
WITH target AS (
    SELECT id, visitor_number, user_id, guest_id, experiment_id, test, completed_at, outcome, completion
    FROM sessions WHERE id = CAST(:session_id AS uuid)
    FOR UPDATE
), claimed AS (
    SELECT 1 FROM users WHERE id = :user_id AND claimed_by IS NOT NULL
)
SELECT CASE WHEN EXISTS (SELECT 1 FROM claimed) THEN 'claimed'
            WHEN t.id IS NULL THEN 'missing'
            WHEN t.user_id = :user_id THEN 'owned'
            ELSE 'denied' END AS ownership,
       t.*, e.config, p.platform, p.participant_id, p.submission_id, p.assignment_id AS platform_assignment_id,
       p.turk_submit_to, now() AS now
FROM (SELECT 1) AS one
LEFT JOIN target t ON true
LEFT JOIN experiments e ON e.id = t.experiment_id
LEFT JOIN session_participants p ON p.session_id = t.id
