-- A session to exclude: its experiment (for the researcher's claim), locked until the exclusion commits.
SELECT experiment_id, outcome, completed_at
FROM sessions
WHERE id = CAST(:id AS uuid)
FOR UPDATE
