-- admission: a platform participant's assignment in the experiment (none for a new participant),
-- from whichever device or guest it started (SPEC §14.2); whether the participation ledger holds its
-- keyed hash (a completed session, SPEC §14.3); and, for a new participant or a test run when
-- count_places, the experiment's participants and places (experiment_places, sql/013).
SELECT a.id AS assignment_id, a.condition,
       EXISTS (SELECT 1 FROM participation_ledger
               WHERE experiment_id = :experiment_id AND participant_hash = ANY (CAST(:hashes AS bytea[]))) AS participated,
       CASE WHEN CAST(:count_places AS boolean) AND (a.id IS NULL OR CAST(:test AS boolean))
            THEN experiment_places(:experiment_id, CAST(:lease_minutes AS integer), CAST(:count_earlier AS boolean))
       END AS counted
FROM (SELECT 1) AS one
LEFT JOIN assignments a
    ON a.experiment_id = :experiment_id AND a.platform = :platform AND a.participant_id = :participant_id
