-- erasure: its Firestore part is done; complete if the Storage part is done too. `uploads` was
-- counted from PostgreSQL's rows by part 1; only a ledger row older than that (NULL) takes the
-- count of Firestore documents deleted.
UPDATE erasures
SET firestore_erased_at = now(), uploads = coalesce(uploads, :uploads),
    completed_at = CASE WHEN storage_erased_at IS NOT NULL THEN now() END
WHERE id = CAST(:erasure_id AS uuid) AND firestore_erased_at IS NULL
