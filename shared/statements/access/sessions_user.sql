-- export_my_data: a user's sessions (its own and those of the guests it claimed), newest first.
-- The order is responses_user.sql's and uploads_user.sql's, which the export walks beside this one.
SELECT s.id, s.experiment_id, s.metadata, s.created_at
FROM sessions s
WHERE s.user_id = :user_id
ORDER BY s.created_at DESC, s.id
