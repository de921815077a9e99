-- register: the responses of the user's sessions take their session's number.
-- A statement of its own, after the sessions moved: its snapshot then includes
-- every response inserted by a submit_response that held a session's lock.
UPDATE responses r SET visitor_number = s.visitor_number
FROM sessions s
WHERE r.session_id = s.id AND s.user_id = :user_id
  AND r.visitor_number IS DISTINCT FROM s.visitor_number
