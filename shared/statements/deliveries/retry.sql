-- `python -m shared.deliveries retry [--failed]`: the pending deliveries (and with --failed the
-- failed ones) due now; the count.
UPDATE completion_deliveries
SET next_attempt_at = now(), failed_at = NULL
WHERE delivered_at IS NULL AND (failed_at IS NULL OR CAST(:failed AS boolean))
