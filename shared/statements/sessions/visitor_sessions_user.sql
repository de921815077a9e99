-- get_visitor: a user's sessions (its own and those of the guests it claimed), newest first.
SELECT s.id, s.experiment_id, s.created_at,
       (SELECT count(*) FROM responses r WHERE r.session_id = s.id) AS response_count
FROM sessions s
WHERE s.user_id = :user_id
ORDER BY s.created_at DESC, s.id
