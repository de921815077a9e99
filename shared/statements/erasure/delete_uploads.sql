-- erasure: the `uploads` rows of the erased sessions (counted for the ledger), before the
-- sessions' delete would cascade to them. Their Firestore documents and objects follow in parts 2 and 3.
DELETE FROM uploads WHERE session_id = ANY(CAST(:session_ids AS uuid[]))
