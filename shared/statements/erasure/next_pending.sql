-- erasure resume: the oldest unfinished erasure that no other process is finishing
-- and that this run has not tried yet, locked (see erasure_lock.sql).
SELECT id, visitor_number, merged_numbers, firestore_erased_at, storage_erased_at
FROM erasures
WHERE completed_at IS NULL AND NOT (id = ANY(CAST(:tried AS uuid[])))
ORDER BY requested_at, id
LIMIT 1
FOR UPDATE SKIP LOCKED
