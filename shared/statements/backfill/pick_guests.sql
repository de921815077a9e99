-- backfill: up to `batch` unclaimed guests with a session that has no number,
-- locked; one that a request holds (create_session, register) is skipped, not waited for.
SELECT g.id, g.visitor_number FROM guests g
WHERE g.claimed_by IS NULL
  AND EXISTS (SELECT 1 FROM sessions s
              WHERE s.guest_id = g.id AND s.user_id IS NULL AND s.visitor_number IS NULL)
ORDER BY g.created_at, g.id
LIMIT :batch
FOR UPDATE SKIP LOCKED
