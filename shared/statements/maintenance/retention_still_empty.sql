-- Retention: the same test as retention_next_guest.sql for one guest, asked again once
-- the erasure holds its row and its sessions (erase_lock_sessions.sql), in a snapshot
-- of its own: a session, response or upload committed meanwhile keeps the guest.
SELECT NOT EXISTS (
    SELECT 1 FROM sessions s
    WHERE s.guest_id = CAST(:guest_id AS uuid)
      AND (s.created_at >= now() - CAST(:days AS integer) * interval '1 day'
           OR s.user_id IS NOT NULL
           OR EXISTS (SELECT 1 FROM responses r WHERE r.session_id = s.id)
           OR EXISTS (SELECT 1 FROM uploads u WHERE u.session_id = s.id)))
  AND EXISTS (SELECT 1 FROM guests WHERE id = CAST(:guest_id AS uuid) AND claimed_by IS NULL)
  AS still_empty
