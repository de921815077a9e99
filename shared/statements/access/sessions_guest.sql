-- export_my_data: a guest's sessions, newest first (none once a user has claimed the guest).
-- The order is responses_guest.sql's and uploads_guest.sql's, which the export walks beside this one.
SELECT s.id, s.experiment_id, s.metadata, s.created_at
FROM sessions s
WHERE s.guest_id = :guest_id AND s.user_id IS NULL
ORDER BY s.created_at DESC, s.id
