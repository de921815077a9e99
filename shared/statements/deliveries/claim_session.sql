-- complete_session's one attempt: its session's delivery, locked, unless the deliveries task holds
-- it (then the task makes the attempt) or it was delivered or failed meanwhile.
SELECT session_id, experiment_id, submission_id, completion_code, attempts, created_at, now() AS now
FROM completion_deliveries
WHERE session_id = CAST(:session_id AS uuid) AND delivered_at IS NULL AND failed_at IS NULL
FOR UPDATE SKIP LOCKED
