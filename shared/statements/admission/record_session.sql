-- admission: the session create_session's statement has just inserted, in the same transaction,
-- joined to its participant: a new participant's assignment (none for a test run), the platform's
-- ids (session_participants: personal data, never logged), and the session's assignment,
-- condition and test flag.
WITH assignment AS (
    INSERT INTO assignments (experiment_id, platform, participant_id, user_id, guest_id, condition)
    SELECT :experiment_id, :platform, :participant_id, :user_id, CAST(:guest_id AS uuid), :condition
    WHERE CAST(:new_assignment AS boolean)
    RETURNING id
), ids AS (
    INSERT INTO session_participants (session_id, platform, participant_id, study_id, submission_id,
                                      assignment_id, hit_id, turk_submit_to)
    SELECT CAST(:session_id AS uuid), :platform, :participant_id, :study_id, :submission_id,
           :mturk_assignment_id, :hit_id, :turk_submit_to
    WHERE :platform <> 'none'
)
UPDATE sessions
SET assignment_id = coalesce(CAST(:assignment_id AS bigint), (SELECT id FROM assignment)),
    condition = :condition, test = CAST(:test AS boolean)
WHERE id = CAST(:session_id AS uuid)
