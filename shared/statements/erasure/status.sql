-- erasure status: how many erasures are done and pending, and the oldest pending one.
SELECT count(*) FILTER (WHERE completed_at IS NOT NULL) AS done,
       count(*) FILTER (WHERE completed_at IS NULL) AS pending,
       min(requested_at) FILTER (WHERE completed_at IS NULL) AS oldest_pending_at,
       max(attempts) FILTER (WHERE completed_at IS NULL) AS most_attempts
FROM erasures
