-- admission: the guest of this key (no row for a new visitor), whether a user claimed it, and its
-- assignment in the experiment (NULL for a new participant).
SELECT g.id AS guest_id, g.claimed_by IS NOT NULL AS claimed, a.id AS assignment_id, a.condition
FROM guests g
LEFT JOIN assignments a ON a.experiment_id = :experiment_id AND a.guest_id = g.id AND a.participant_id IS NULL
WHERE g.key_hash = :key_hash
