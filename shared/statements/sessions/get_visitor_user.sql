-- get_visitor: the registered (or anonymous) caller's visitor record (claimed_by
-- set: an anonymous account whose data a signed-in account claimed, SPEC §13).
SELECT id, visitor_number, claimed_by FROM users WHERE id = :user_id
