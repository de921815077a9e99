-- erasure: the rows of the anonymous accounts the user claimed, before the user's own
-- (deleting that first would un-claim them: users.claimed_by is ON DELETE SET NULL).
-- Their claim codes go with them (ON DELETE CASCADE).
DELETE FROM users WHERE id = ANY(CAST(:user_ids AS text[]))
