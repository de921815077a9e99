-- erasure: an unfinished erasure, locked by the one process finishing it now.
-- SKIP LOCKED: if another process (a second `resume`, the request that made it)
-- holds it, this one leaves it alone instead of deleting the same things twice.
SELECT id, visitor_number, merged_numbers, firestore_erased_at, storage_erased_at
FROM erasures
WHERE id = CAST(:erasure_id AS uuid) AND completed_at IS NULL
FOR UPDATE SKIP LOCKED
