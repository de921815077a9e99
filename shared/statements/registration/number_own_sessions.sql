-- register: the user's own sessions made while numbering was failing, once the user has a number.
UPDATE sessions SET visitor_number = :number, updated_at = now()
WHERE user_id = :user_id AND visitor_number IS NULL
