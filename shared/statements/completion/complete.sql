-- complete_session: the session completed, with the answer a repeat returns as stored.
UPDATE sessions
SET completed_at = CAST(:completed_at AS timestamptz), outcome = :outcome, completion = CAST(:completion AS jsonb)
WHERE id = CAST(:session_id AS uuid)
