-- erasure: the responses of the erased sessions (counted for the ledger).
DELETE FROM responses WHERE session_id = ANY(CAST(:session_ids AS uuid[]))
