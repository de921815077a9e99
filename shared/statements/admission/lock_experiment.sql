-- create_session for a configured experiment (shared/studies/admission.py): its row, held FOR
-- UPDATE until the transaction ends, before any visitor's row. Every admission to the experiment
-- waits here, so what the next statements count (participants, places) is exact. `taken`: the
-- sessionId is a stored or an erased session's (a retry, answered by create_session's statement).
SELECT e.config, e.created_at,
       EXISTS (SELECT 1 FROM sessions WHERE id = CAST(:session_id AS uuid))
       OR EXISTS (SELECT 1 FROM erased_sessions WHERE session_id = CAST(:session_id AS uuid)) AS taken
FROM experiments e
WHERE e.id = :experiment_id
FOR UPDATE OF e
