-- erasure: its Firestore part is done (the uploads documents counted); complete
-- if the Storage part is done too.
UPDATE erasures
SET firestore_erased_at = now(), uploads = :uploads,
    completed_at = CASE WHEN storage_erased_at IS NOT NULL THEN now() END
WHERE id = CAST(:erasure_id AS uuid) AND firestore_erased_at IS NULL
