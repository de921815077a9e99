-- on_upload_finalized: the session an uploaded object belongs to (sessions/{sessionId}/...).
-- FOR SHARE, held while the object is tagged and the upload recorded in Firestore:
-- an erasure locks its sessions FOR UPDATE, so it waits for an upload in flight
-- and its Firestore part then deletes what the upload wrote; an event handled
-- after the erasure finds the tombstone instead (upload_erased_session.sql).
SELECT id, visitor_number, experiment_id FROM sessions WHERE id = CAST(:session_id AS uuid) FOR SHARE
