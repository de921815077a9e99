-- get_study_stats: new visitors, sessions and responses per UTC day since `since`
-- (the first of the last 30 days), for each experiment in scope (as in
-- study_stats_totals); days without any are not rows. A visitor is new on the day
-- of its first session in the experiment. Read-only.
WITH chosen AS (
    SELECT s.id, s.experiment_id, coalesce(s.user_id, s.guest_id::text) AS visitor,
           (s.created_at AT TIME ZONE 'UTC')::date AS day
    FROM sessions s
    WHERE CAST(:everything AS boolean)
       OR s.experiment_id = ANY (CAST(:experiments AS text[]))
       OR (CAST(:without_experiment AS boolean) AND s.experiment_id IS NULL)
), counts AS (
    SELECT experiment_id, first_day AS day, count(*) AS new_visitors, 0 AS sessions, 0 AS responses
    FROM (SELECT experiment_id, min(day) AS first_day FROM chosen GROUP BY experiment_id, visitor) v
    WHERE first_day >= CAST(:since AS date)
    GROUP BY experiment_id, first_day
    UNION ALL
    SELECT experiment_id, day, 0, count(*), 0
    FROM chosen
    WHERE day >= CAST(:since AS date)
    GROUP BY experiment_id, day
    UNION ALL
    SELECT c.experiment_id, (r.created_at AT TIME ZONE 'UTC')::date, 0, 0, count(*)
    FROM responses r
    JOIN chosen c ON c.id = r.session_id
    WHERE r.created_at >= CAST(:since AS date) AT TIME ZONE 'UTC'
    GROUP BY c.experiment_id, (r.created_at AT TIME ZONE 'UTC')::date
)
SELECT experiment_id, day, sum(new_visitors) AS new_visitors, sum(sessions) AS sessions, sum(responses) AS responses
FROM counts
GROUP BY experiment_id, day
ORDER BY experiment_id NULLS LAST, day
