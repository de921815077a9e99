-- register: a numbered user claimed a guest with another number; queries by the
-- guest's number still resolve through visitor_merges. A number reaches a merge
-- once per claim; should a guest be claimed again (its user was deleted, which
-- un-claims it), the newest merge is the one that holds.
INSERT INTO visitor_merges (from_number, to_number, user_id) VALUES (:from_number, :to_number, :user_id)
ON CONFLICT (from_number) DO UPDATE
SET to_number = EXCLUDED.to_number, user_id = EXCLUDED.user_id, merged_at = now()
