-- on_upload_finalized: the session an uploaded object belongs to (sessions/{sessionId}/...).
SELECT id, visitor_number, experiment_id FROM sessions WHERE id = CAST(:session_id AS uuid)
