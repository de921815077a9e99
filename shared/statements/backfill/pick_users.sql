-- backfill: up to `batch` users with a session that has no number, locked; one
-- that a request holds (create_session, register) is skipped, not waited for.
SELECT u.id, u.visitor_number FROM users u
WHERE EXISTS (SELECT 1 FROM sessions s WHERE s.user_id = u.id AND s.visitor_number IS NULL)
ORDER BY u.created_at, u.id
LIMIT :batch
FOR UPDATE SKIP LOCKED
