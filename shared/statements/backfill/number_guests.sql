-- backfill: number the picked guests that have no number, oldest first, so that
-- numbers follow first sight: PostgreSQL evaluates a volatile output expression
-- (nextval) after the ORDER BY.
UPDATE guests g SET visitor_number = numbered.visitor_number
FROM (SELECT id, nextval('visitor_number_seq') AS visitor_number FROM guests
      WHERE id = ANY(CAST(:ids AS uuid[])) AND visitor_number IS NULL
      ORDER BY created_at, id) AS numbered
WHERE g.id = numbered.id
RETURNING g.id, g.visitor_number
