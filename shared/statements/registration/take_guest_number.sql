-- register: a user without a number takes the number of the guest it claims.
UPDATE users SET visitor_number = :number, updated_at = now()
WHERE id = :user_id AND visitor_number IS NULL
RETURNING visitor_number
