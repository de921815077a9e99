-- register: the guest to claim, locked. FOR UPDATE: create_session holds FOR SHARE
-- on the guest row while it inserts a session. Waiting for this lock means every
-- session the guest has started is committed and seen by the statements after it;
-- a create_session that comes later waits for the claim to commit and is refused
-- with guest_claimed.
SELECT id, visitor_number, claimed_by FROM guests WHERE key_hash = :key_hash FOR UPDATE
