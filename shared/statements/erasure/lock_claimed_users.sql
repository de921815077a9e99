-- erasure of a user: the anonymous accounts it claimed (SPEC §13), locked after the
-- user's own row (as register locks them). Their sessions carry the user's id now
-- and are erased with its own; their rows (the record of the claim) go too.
SELECT id FROM users WHERE claimed_by = :user_id ORDER BY id FOR UPDATE
