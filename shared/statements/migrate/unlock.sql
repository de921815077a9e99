-- migrate: let the next runner in.
SELECT pg_advisory_unlock(:key)
