-- on_upload_finalized: whether the object's session was erased (a tombstone), read
-- after upload_session found no session: a later statement of the same transaction
-- sees an erasure that committed while upload_session waited for its lock.
SELECT erasure_id FROM erased_sessions WHERE session_id = CAST(:session_id AS uuid)
