-- A new configuration replaces the stored one (its row locked by experiments/lock).
UPDATE experiments
SET config = CAST(:config AS jsonb), updated_at = now()
WHERE id = :id
RETURNING updated_at
