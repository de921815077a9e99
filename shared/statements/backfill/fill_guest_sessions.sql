-- backfill: the picked guests' sessions take their guest's number. Before the
-- responses, in a statement of its own: the sessions' row locks make a
-- submit_response in flight finish first, so the responses statement (with its
-- later snapshot) sees its response.
UPDATE sessions s SET visitor_number = g.visitor_number, updated_at = now()
FROM guests g
WHERE g.id = ANY(CAST(:ids AS uuid[])) AND s.guest_id = g.id AND s.user_id IS NULL
  AND s.visitor_number IS NULL AND g.visitor_number IS NOT NULL
