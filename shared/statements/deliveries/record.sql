-- What one attempt of a claimed delivery gave (shared/studies/deliveries.py): delivered, failed,
-- or another attempt after a wait; attempts counted, the reason of the last failure kept. A
-- delivery done meanwhile (by a run that claimed it after a lease ran out) is left as it is.
UPDATE completion_deliveries
SET attempts = attempts + 1,
    delivered_at = CASE WHEN :result = 'delivered' THEN now() END,
    failed_at = CASE WHEN :result = 'failed' THEN now() END,
    next_attempt_at = CASE WHEN :result = 'retry' THEN now() + make_interval(secs => CAST(:wait_seconds AS integer))
                           ELSE next_attempt_at END,
    last_error = :error
WHERE session_id = CAST(:session_id AS uuid) AND delivered_at IS NULL AND failed_at IS NULL
