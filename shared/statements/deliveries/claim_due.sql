-- The deliveries task: the next delivery that is due, claimed for this attempt by moving its next
-- attempt a lease ahead (LEASE_SECONDS of shared/studies/deliveries.py): the call to Prolific is
-- made after this commits, holding no connection, and a run that dies in it leaves the delivery
-- to a later run. SKIP LOCKED: a delivery being claimed by another run is left to it, so that
-- overlapping runs deliver each once.
UPDATE completion_deliveries d
SET next_attempt_at = now() + make_interval(secs => CAST(:lease_seconds AS integer))
WHERE d.session_id = (
    SELECT session_id FROM completion_deliveries
    WHERE delivered_at IS NULL AND failed_at IS NULL AND next_attempt_at <= now()
    ORDER BY next_attempt_at
    LIMIT 1
    FOR UPDATE SKIP LOCKED
)
RETURNING d.session_id, d.experiment_id, d.submission_id, d.completion_code, d.attempts, d.created_at, now() AS now
