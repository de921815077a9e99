-- complete_session, once the session is locked (lock_session_*.sql), in a statement of its own:
-- in READ COMMITTED its snapshot is taken after the lock was granted, so it counts every response
-- committed before. Only when the session holds at least the responses the client recorded is it
-- completed, with the answer a repeat returns, its participant's ledger row (a keyed hash; none
-- for a free label or a test run) and its Prolific delivery (none unless one is asked for).
WITH counted AS (
    SELECT count(*) AS stored FROM responses WHERE session_id = CAST(:session_id AS uuid)
), completed AS (
    UPDATE sessions
    SET completed_at = CAST(:completed_at AS timestamptz), outcome = :outcome, completion = CAST(:completion AS jsonb)
    WHERE id = CAST(:session_id AS uuid) AND (SELECT stored FROM counted) >= CAST(:response_count AS bigint)
    RETURNING id, experiment_id
), ledger AS (
    INSERT INTO participation_ledger (experiment_id, participant_hash)
    SELECT experiment_id, CAST(:participant_hash AS bytea) FROM completed
    WHERE CAST(:participant_hash AS bytea) IS NOT NULL
    ON CONFLICT (experiment_id, participant_hash) DO NOTHING
), delivery AS (
    INSERT INTO completion_deliveries (session_id, experiment_id, submission_id, completion_code)
    SELECT id, experiment_id, CAST(:submission_id AS text), CAST(:server_code AS text) FROM completed
    WHERE CAST(:server_code AS text) IS NOT NULL
    ON CONFLICT (session_id) DO NOTHING
)
SELECT (SELECT stored FROM counted) AS stored, EXISTS (SELECT 1 FROM completed) AS completed
