-- Retention (SPEC §12, GUEST_RETENTION_DAYS): the oldest guest that no request is using
-- and this run has not tried yet, that is never claimed, was made more than `days` days
-- ago, and has no session newer than that, none with a response or an upload and none moved
-- to a user; locked. SKIP LOCKED: a guest a create_session (FOR SHARE) or another maintenance
-- run holds is left for later, so two runs at once never take the same guest.
SELECT g.id, g.key_hash
FROM guests g
WHERE g.claimed_by IS NULL
  AND g.created_at < now() - CAST(:days AS integer) * interval '1 day'
  AND NOT (g.id = ANY(CAST(:tried AS uuid[])))
  AND NOT EXISTS (
      SELECT 1 FROM sessions s
      WHERE s.guest_id = g.id
        AND (s.created_at >= now() - CAST(:days AS integer) * interval '1 day'
             OR s.user_id IS NOT NULL
             OR EXISTS (SELECT 1 FROM responses r WHERE r.session_id = s.id)
             OR EXISTS (SELECT 1 FROM uploads u WHERE u.session_id = s.id)))
ORDER BY g.created_at, g.id
LIMIT 1
FOR UPDATE OF g SKIP LOCKED
