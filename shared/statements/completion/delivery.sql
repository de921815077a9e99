-- complete_session: a Prolific completion to make from the server (SPEC §14.5), due at once.
INSERT INTO completion_deliveries (session_id, experiment_id, submission_id, completion_code)
VALUES (CAST(:session_id AS uuid), :experiment_id, :submission_id, :completion_code)
ON CONFLICT (session_id) DO NOTHING
