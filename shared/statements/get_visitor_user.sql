-- get_visitor: the registered caller's visitor record.
SELECT id, visitor_number FROM users WHERE id = :user_id
