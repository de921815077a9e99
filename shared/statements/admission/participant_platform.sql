-- admission: a platform participant's assignment in the experiment (none for a new participant),
-- from whichever device or guest it started (SPEC §14.2).
SELECT a.id AS assignment_id, a.condition
FROM assignments a
WHERE a.experiment_id = :experiment_id AND a.platform = :platform AND a.participant_id = :participant_id
