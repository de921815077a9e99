-- erasure: the erased sessions' assignments that no session holds any more (run after
-- delete_sessions.sql). A platform participant's assignment names no owner, so no cascade from
-- users or guests deletes it: this does, with its platform id, and its place is free. One that
-- another visitor's sessions hold (the same platform id on another guest key) stays, theirs.
-- Owners' assignments go with their users and guests rows (ON DELETE CASCADE).
DELETE FROM assignments a
WHERE a.id = ANY(CAST(:assignment_ids AS bigint[]))
  AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.assignment_id = a.id)
