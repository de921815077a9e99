-- erasure: its Storage part is done (the objects counted); complete if the
-- Firestore part is done too.
UPDATE erasures
SET storage_erased_at = now(), objects = :objects,
    completed_at = CASE WHEN firestore_erased_at IS NOT NULL THEN now() END
WHERE id = CAST(:erasure_id AS uuid) AND storage_erased_at IS NULL
