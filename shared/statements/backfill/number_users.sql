-- backfill: number the picked users that have no number, oldest first (as
-- backfill_number_guests.sql).
UPDATE users u SET visitor_number = numbered.visitor_number, updated_at = now()
FROM (SELECT id, nextval('visitor_number_seq') AS visitor_number FROM users
      WHERE id = ANY(CAST(:ids AS text[])) AND visitor_number IS NULL
      ORDER BY created_at, id) AS numbered
WHERE u.id = numbered.id
RETURNING u.id, u.visitor_number
