-- Of the conditions a new configuration drops, those that hold assignments, with their count.
SELECT condition, count(*) AS assignments
FROM assignments
WHERE experiment_id = :id AND condition = ANY (CAST(:dropped AS text[]))
GROUP BY condition
ORDER BY condition
