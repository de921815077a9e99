-- export_my_data: a user's uploads (rows of `uploads`), session by session in sessions_user.sql's
-- order, in the order the files were made in each.
SELECT u.session_id, u.name, u.content_type, u.size, u.uploaded_at
FROM uploads u
JOIN sessions s ON s.id = u.session_id
WHERE s.user_id = :user_id
ORDER BY s.created_at DESC, s.id, u.uploaded_at, u.name, u.generation
