-- register with a guest key that never made a session (SPEC §13): record the key
-- as claimed by the user, with no number, so that a first create_session for it -
-- one racing this register, or any later one - is refused with guest_claimed
-- instead of starting a guest that nobody would ever claim. If a create_session
-- inserted the guest first, the insert waits for it to commit and does nothing
-- (no row returned): register then locks and claims that guest as usual.
INSERT INTO guests (id, key_hash, visitor_number, claimed_by, claimed_at)
VALUES (CAST(:guest_id AS uuid), :key_hash, NULL, :user_id, now())
ON CONFLICT (key_hash) DO NOTHING
RETURNING id
