-- export_my_data: the registered (or anonymous) caller's own record (claimed_by set:
-- an anonymous account claimed by a signed-in account; its data is that account's now).
SELECT id, visitor_number, email, display_name, claimed_by FROM users WHERE id = :user_id
