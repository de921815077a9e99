-- The researchers' trail, newest first: the latest acts, as many as the limit (get_researcher_actions).
SELECT id, uid, action, details, at
FROM researcher_actions
ORDER BY id DESC
LIMIT CAST(:limit AS integer)
