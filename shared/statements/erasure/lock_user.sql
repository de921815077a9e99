-- delete_my_data / erase_visitor for a user: its row, locked first (the order of
-- register and create_session: users row, guest rows, sessions, responses).
-- create_session takes FOR SHARE on it and register upserts it, so both wait for
-- the erasure; afterwards they find no user. claimed_by: an anonymous account
-- claimed by a signed-in one is not erased on its own (its data is the claimer's).
SELECT id, visitor_number, claimed_by FROM users WHERE id = :user_id FOR UPDATE
