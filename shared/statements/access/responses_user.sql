-- export_my_data: a user's responses, session by session in sessions_user.sql's order, oldest first in each.
SELECT r.session_id, r.id, r.level, r.data, r.created_at
FROM responses r
JOIN sessions s ON s.id = r.session_id
WHERE s.user_id = :user_id
ORDER BY s.created_at DESC, s.id, r.created_at, r.id
