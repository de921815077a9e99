-- export_my_data: the registered (or anonymous) caller's own record.
SELECT id, visitor_number, email, display_name FROM users WHERE id = :user_id
