-- complete_session, once the session is locked: in a statement of its own, so that in READ
-- COMMITTED it counts every response committed before the lock was granted (a statement's
-- snapshot is taken when it starts); the experiment's configuration (none: a free label);
-- the platform ids the session was started with; and the completion time (the transaction's).
SELECT (SELECT count(*) FROM responses r WHERE r.session_id = CAST(:session_id AS uuid)) AS stored,
       (SELECT e.config FROM experiments e WHERE e.id = :experiment_id) AS config,
       p.platform, p.participant_id, p.submission_id, p.assignment_id, p.turk_submit_to,
       now() AS completed_at
FROM (SELECT 1) AS one
LEFT JOIN session_participants p ON p.session_id = CAST(:session_id AS uuid)
