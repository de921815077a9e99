-- A researcher excludes a session: outcome `excluded`, completed now unless it was already; its
-- place is free from here on (it never counts as a place, an admission or a participation).
UPDATE sessions
SET outcome = 'excluded', completed_at = coalesce(completed_at, now()), updated_at = now()
WHERE id = CAST(:id AS uuid)
RETURNING completed_at
