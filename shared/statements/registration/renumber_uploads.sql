-- register: the uploads of the user's sessions take their session's number, as their
-- responses do (renumber_responses.sql; SPEC §16). A statement of its own, after the
-- sessions moved: it sees every row that a storage trigger holding a session committed.
UPDATE uploads u SET visitor_number = s.visitor_number
FROM sessions s
WHERE u.session_id = s.id AND s.user_id = :user_id
  AND u.visitor_number IS DISTINCT FROM s.visitor_number
