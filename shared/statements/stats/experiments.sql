-- get_study_stats: every experimentId that any session has (to count the uploads
-- of sessions without one as all uploads less those of every experiment). Read-only.
SELECT DISTINCT experiment_id
FROM sessions
WHERE experiment_id IS NOT NULL
