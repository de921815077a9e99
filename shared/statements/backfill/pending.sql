-- backfill: what is left for a later run: visitors that were busy (locked) during this one.
SELECT (SELECT count(*) FROM guests g WHERE g.claimed_by IS NULL AND EXISTS (
            SELECT 1 FROM sessions s
            WHERE s.guest_id = g.id AND s.user_id IS NULL AND s.visitor_number IS NULL))
     + (SELECT count(*) FROM users u WHERE EXISTS (
            SELECT 1 FROM sessions s WHERE s.user_id = u.id AND s.visitor_number IS NULL))
