-- audit: of these session ids, which are sessions and which were erased.
SELECT CAST(wanted.id AS text) AS id,
       EXISTS (SELECT 1 FROM sessions s WHERE s.id = wanted.id) AS live,
       EXISTS (SELECT 1 FROM erased_sessions e WHERE e.session_id = wanted.id) AS erased
FROM unnest(CAST(:session_ids AS uuid[])) AS wanted (id)
