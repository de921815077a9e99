-- erasure of a user: the guests it claimed, locked (their rows are deleted too).
SELECT id, visitor_number FROM guests WHERE claimed_by = :user_id ORDER BY id FOR UPDATE
