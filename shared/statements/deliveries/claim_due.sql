-- The deliveries task: the next delivery that is due, locked for this attempt. SKIP LOCKED: a
-- delivery another run (or complete_session's own attempt) holds is left to it, so that
-- overlapping runs deliver each once; a row updated meanwhile is judged on its new version.
SELECT session_id, experiment_id, submission_id, completion_code, attempts, created_at, now() AS now
FROM completion_deliveries
WHERE delivered_at IS NULL AND failed_at IS NULL AND next_attempt_at <= now()
ORDER BY next_attempt_at
LIMIT 1
FOR UPDATE SKIP LOCKED
