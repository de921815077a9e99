-- erasure: the sessions themselves.
DELETE FROM sessions WHERE id = ANY(CAST(:session_ids AS uuid[]))
