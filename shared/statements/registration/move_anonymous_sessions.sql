-- register: the claimed anonymous account's sessions move to the user and take its
-- number. Row locks on every moved session, as register_move_sessions.sql: a
-- submit_response that already holds one finishes first (its response is renumbered
-- by register_renumber_responses.sql); one that comes later sees the new owner.
UPDATE sessions SET user_id = :user_id, visitor_number = CAST(:number AS bigint), updated_at = now()
WHERE user_id = :anonymous_id
