-- complete_session's one attempt: its session's delivery, claimed as claim_due.sql claims one,
-- unless the deliveries task has claimed it (then the task makes the attempt) or it is done.
UPDATE completion_deliveries d
SET next_attempt_at = now() + make_interval(secs => CAST(:lease_seconds AS integer))
WHERE d.session_id = (
    SELECT session_id FROM completion_deliveries
    WHERE session_id = CAST(:session_id AS uuid) AND delivered_at IS NULL AND failed_at IS NULL
      AND next_attempt_at <= now()
    FOR UPDATE SKIP LOCKED
)
RETURNING d.session_id, d.experiment_id, d.submission_id, d.completion_code, d.attempts, d.created_at, now() AS now
