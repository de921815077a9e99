-- register: a user without a number (and no numbered guest to claim) takes the next one.
UPDATE users SET visitor_number = nextval('visitor_number_seq'), updated_at = now()
WHERE id = :user_id AND visitor_number IS NULL
RETURNING visitor_number
