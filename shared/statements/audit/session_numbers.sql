-- audit: the sessions (older than min_age seconds) whose visitor number is not their owner's
-- (view session_owner_numbers, sql/011). An owner without a number yet is for make backfill to
-- number, not a disagreement.
SELECT count(*) AS found FROM session_owner_numbers
WHERE created_at < now() - CAST(:min_age AS integer) * interval '1 second'
  AND owner_number IS NOT NULL AND visitor_number IS DISTINCT FROM owner_number
