-- register with X-Anonymous-Token or a claim code of an anonymous account (SPEC §13):
-- the anonymous account's users row, locked. FOR UPDATE: create_session holds FOR
-- SHARE on the row while it inserts a session (create_session_user.sql), so once
-- this lock is held every session of the account is committed and seen by the
-- statements after it, and a create_session that comes later waits for the claim
-- to commit and is refused with guest_claimed. email: an account that has one
-- has been linked to a provider since the token was issued; it is not anonymous.
SELECT id, visitor_number, email, claimed_by FROM users WHERE id = :anonymous_id FOR UPDATE
