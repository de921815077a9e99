-- delete_my_data / erase_visitor for a user: its row, locked first (the order of
-- register and create_session: users row, guest rows, sessions, responses).
-- create_session takes FOR SHARE on it and register upserts it, so both wait for
-- the erasure; afterwards they find no user.
SELECT id, visitor_number FROM users WHERE id = :user_id FOR UPDATE
