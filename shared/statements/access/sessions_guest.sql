-- export_my_data: a guest's sessions, newest first (none once a user has claimed the guest).
-- With its study columns and the platform ids it was started with (SPEC §14.7), the caller's own.
-- The order is responses_guest.sql's and uploads_guest.sql's, which the export walks beside this one.
SELECT s.id, s.experiment_id, s.metadata, s.created_at, s.condition, s.outcome, s.completed_at,
       p.platform, p.participant_id, p.study_id, p.submission_id, p.assignment_id, p.hit_id, p.turk_submit_to
FROM sessions s
LEFT JOIN session_participants p ON p.session_id = s.id
WHERE s.guest_id = :guest_id AND s.user_id IS NULL
ORDER BY s.created_at DESC, s.id
