-- get_visitor: a guest's sessions, newest first (none once a user has claimed the guest).
SELECT s.id, s.experiment_id, s.created_at,
       (SELECT count(*) FROM responses r WHERE r.session_id = s.id) AS response_count
FROM sessions s
WHERE s.guest_id = :guest_id AND s.user_id IS NULL
ORDER BY s.created_at DESC, s.id
