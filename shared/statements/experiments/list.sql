-- The configurations a researcher may see (`everything`, or those of `experiments`), by experimentId.
SELECT id, config, updated_at
FROM experiments
WHERE CAST(:everything AS boolean) OR id = ANY (CAST(:experiments AS text[]))
ORDER BY id
