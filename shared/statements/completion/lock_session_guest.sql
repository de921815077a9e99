-- complete_session by a guest: as lock_session_user.sql, with the guest's ownership (a guest owns
-- its sessions until a user claims it: register sets user_id on every one of them).
WITH target AS (
    SELECT id, visitor_number, user_id, guest_id, experiment_id, test, completed_at, outcome, completion
    FROM sessions WHERE id = CAST(:session_id AS uuid)
    FOR UPDATE
)
SELECT CASE WHEN t.id IS NULL THEN 'missing'
            WHEN t.user_id IS NULL
             AND t.guest_id = (SELECT g.id FROM guests g WHERE g.key_hash = :key_hash AND g.claimed_by IS NULL)
            THEN 'owned'
            ELSE 'denied' END AS ownership,
       t.*, e.config, p.platform, p.participant_id, p.submission_id, p.assignment_id AS platform_assignment_id,
       p.turk_submit_to, now() AS now
FROM (SELECT 1) AS one
LEFT JOIN target t ON true
LEFT JOIN experiments e ON e.id = t.experiment_id
LEFT JOIN session_participants p ON p.session_id = t.id
