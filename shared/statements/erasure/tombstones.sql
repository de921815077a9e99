-- erasure: a tombstone per erased session. create_session refuses these ids for
-- ever, and on_upload_finalized deletes an object of one and records nothing.
INSERT INTO erased_sessions (session_id, erasure_id)
SELECT session_id, CAST(:erasure_id AS uuid) FROM unnest(CAST(:session_ids AS uuid[])) AS session_id
