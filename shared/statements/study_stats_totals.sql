-- get_study_stats: each experiment's counts and first and last session, for the
-- experiments in scope (`everything`, or those of `experiments` and, with
-- `without_experiment`, the sessions without one). A visitor is a user or an
-- unclaimed guest (a claimed guest's sessions are its user's); registered ones are
-- users. Read-only, in the snapshot shared with study_stats_levels and _daily.
WITH chosen AS (
    SELECT s.id, s.experiment_id, s.user_id, s.guest_id, s.created_at
    FROM sessions s
    WHERE CAST(:everything AS boolean)
       OR s.experiment_id = ANY (CAST(:experiments AS text[]))
       OR (CAST(:without_experiment AS boolean) AND s.experiment_id IS NULL)
), answered AS (
    SELECT r.session_id, count(*) AS responses
    FROM responses r
    WHERE r.session_id IN (SELECT id FROM chosen)
    GROUP BY r.session_id
)
SELECT c.experiment_id,
       count(DISTINCT coalesce(c.user_id, c.guest_id::text)) AS visitors,
       count(DISTINCT c.user_id) AS registered_visitors,
       count(*) AS sessions,
       coalesce(sum(a.responses), 0) AS responses,
       min(c.created_at) AS first_session_at,
       max(c.created_at) AS last_session_at
FROM chosen c
LEFT JOIN answered a ON a.session_id = c.id
GROUP BY c.experiment_id
ORDER BY c.experiment_id NULLS LAST
