-- `python -m shared.deliveries list`: every delivery, newest first, without the submission id
-- (a platform id) or the code.
SELECT session_id, experiment_id, attempts, next_attempt_at, delivered_at, failed_at, last_error, created_at,
       CASE WHEN delivered_at IS NOT NULL THEN 'delivered' WHEN failed_at IS NOT NULL THEN 'failed'
            ELSE 'pending' END AS status
FROM completion_deliveries
ORDER BY created_at DESC, session_id
