-- backfill: the picked users' sessions take their user's number (before the
-- responses, as backfill_fill_guest_sessions.sql).
UPDATE sessions s SET visitor_number = u.visitor_number, updated_at = now()
FROM users u
WHERE u.id = ANY(CAST(:ids AS text[])) AND s.user_id = u.id
  AND s.visitor_number IS NULL AND u.visitor_number IS NOT NULL
