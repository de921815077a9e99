-- A first configuration of an experimentId; nothing when a concurrent request has just made one
-- (the caller then runs again and locks that row).
INSERT INTO experiments (id, config)
VALUES (:id, CAST(:config AS jsonb))
ON CONFLICT (id) DO NOTHING
RETURNING updated_at
