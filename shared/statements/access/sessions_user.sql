-- export_my_data: a user's sessions (its own and those of the guests it claimed), newest first.
-- With its study columns and the platform ids it was started with (SPEC §14.7), the caller's own.
-- The order is responses_user.sql's and uploads_user.sql's, which the export walks beside this one.
SELECT s.id, s.experiment_id, s.metadata, s.created_at, s.condition, s.outcome, s.completed_at,
       p.platform, p.participant_id, p.study_id, p.submission_id, p.assignment_id, p.hit_id, p.turk_submit_to
FROM sessions s
LEFT JOIN session_participants p ON p.session_id = s.id
WHERE s.user_id = :user_id
ORDER BY s.created_at DESC, s.id
