-- register: the claimed guest's sessions move to the user and take its number.
-- Row locks on every moved session: a submit_response that already holds one
-- finishes first (and its response is renumbered by register_renumber_responses.sql);
-- one that comes later sees the new owner.
UPDATE sessions SET user_id = :user_id, visitor_number = CAST(:number AS bigint), updated_at = now()
WHERE guest_id = :guest_id AND user_id IS NULL
