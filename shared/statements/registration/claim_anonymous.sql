-- register: the anonymous account now belongs to the user; create_session,
-- submit_response and get_visitor refuse its uid from now on. Its number goes with
-- its sessions (the user takes it, or it is merged into the user's), so the row
-- gives it up here, before the user may take it (users.visitor_number is UNIQUE).
-- The row is already locked (register_lock_anonymous.sql).
UPDATE users SET claimed_by = :user_id, claimed_at = now(), visitor_number = NULL, updated_at = now()
WHERE id = :anonymous_id
