-- export_my_data: a guest's uploads (rows of `uploads`), session by session in sessions_guest.sql's
-- order, in the order the files were made in each.
SELECT u.session_id, u.name, u.content_type, u.size, u.uploaded_at
FROM uploads u
JOIN sessions s ON s.id = u.session_id
WHERE s.guest_id = :guest_id AND s.user_id IS NULL
ORDER BY s.created_at DESC, s.id, u.uploaded_at, u.name, u.generation
