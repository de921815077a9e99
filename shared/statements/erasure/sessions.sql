-- erasure: the sessions it erased, whose Firestore documents and Storage objects go next.
SELECT session_id FROM erased_sessions WHERE erasure_id = CAST(:erasure_id AS uuid) ORDER BY session_id
