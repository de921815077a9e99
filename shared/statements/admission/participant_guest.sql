-- admission: the guest of this key (NULLs for a new visitor), whether a user claimed it, and its
-- assignment in the experiment (NULL for a new participant); and, for a new participant or a test
-- run when count_places, the experiment's participants and places (experiment_places, sql/013).
SELECT g.id AS guest_id, g.claimed_by IS NOT NULL AS claimed, a.id AS assignment_id, a.condition,
       CASE WHEN CAST(:count_places AS boolean) AND (a.id IS NULL OR CAST(:test AS boolean))
            THEN experiment_places(:experiment_id, CAST(:lease_minutes AS integer), CAST(:count_earlier AS boolean))
       END AS counted
FROM (SELECT 1) AS one
LEFT JOIN guests g ON g.key_hash = :key_hash
LEFT JOIN assignments a ON a.experiment_id = :experiment_id AND a.guest_id = g.id AND a.participant_id IS NULL
