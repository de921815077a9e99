-- register with the token of an anonymous account that never made a session: record
-- the uid as claimed by the user, with no number, so that its first create_session -
-- one racing this register, or any later one - is refused with guest_claimed (as
-- register_claim_unseen_key.sql does for a guest key). If a create_session inserted
-- the row first, this waits for it to commit and does nothing (no row returned):
-- register then locks and claims that account as usual.
INSERT INTO users (id, email, visitor_number, claimed_by, claimed_at)
VALUES (:anonymous_id, NULL, NULL, :user_id, now())
ON CONFLICT (id) DO NOTHING
RETURNING id
