-- register: create or update the users row from the ID token.
-- (xmax = 0) is true for a row this statement inserted, false for one it updated.
-- updated_at moves only when something changed, so a repeated call changes nothing.
-- claimed_by: the uid was an anonymous account that another account claimed (SPEC §13).
INSERT INTO users (id, email, display_name) VALUES (:user_id, :email, :display_name)
ON CONFLICT (id) DO UPDATE SET
    email = EXCLUDED.email,
    display_name = COALESCE(EXCLUDED.display_name, users.display_name),
    updated_at = CASE
        WHEN (users.email, users.display_name)
             IS DISTINCT FROM (EXCLUDED.email, COALESCE(EXCLUDED.display_name, users.display_name))
        THEN now() ELSE users.updated_at END
RETURNING id, email, display_name, visitor_number, claimed_by, created_at, (xmax = 0) AS created
