-- erasure: the visitor's sessions, locked. For a user: those carrying its id (its
-- own and its claimed guests') and any of its claimed guests'; for a guest: its
-- own (user_id is NULL then). FOR UPDATE waits for every submit_response holding
-- FOR SHARE on one of them; one that comes later finds no session (404).
SELECT id FROM sessions
WHERE user_id = :user_id OR guest_id = ANY(CAST(:guest_ids AS uuid[]))
ORDER BY id
FOR UPDATE
