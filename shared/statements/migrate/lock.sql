-- migrate: wait for any other runner; a session-level lock, held across the per-file transactions.
SELECT pg_advisory_lock(:key)
