-- get_study_stats: the level funnel. For each experiment in scope (as in
-- study_stats_totals) and each level L that its responses reached, the sessions
-- whose highest level is at least L. Read-only.
WITH chosen AS (
    SELECT s.id, s.experiment_id
    FROM sessions s
    WHERE CAST(:everything AS boolean)
       OR s.experiment_id = ANY (CAST(:experiments AS text[]))
       OR (CAST(:without_experiment AS boolean) AND s.experiment_id IS NULL)
), session_levels AS MATERIALIZED (
    -- one row per level a session reached
    SELECT c.experiment_id, r.session_id, r.level
    FROM responses r
    JOIN chosen c ON c.id = r.session_id
    WHERE r.level IS NOT NULL
    GROUP BY c.experiment_id, r.session_id, r.level
), highest AS (
    -- how many sessions stopped at each highest level
    SELECT experiment_id, level, count(*) AS sessions
    FROM (SELECT experiment_id, max(level) AS level FROM session_levels GROUP BY experiment_id, session_id) h
    GROUP BY experiment_id, level
), reached AS (
    -- every level reached, with the sessions that stopped there (none for levels passed on the way)
    SELECT experiment_id, level, 0 AS sessions FROM session_levels GROUP BY experiment_id, level
    UNION ALL
    SELECT experiment_id, level, sessions FROM highest
)
SELECT experiment_id, level,
       sum(sum(sessions)) OVER (PARTITION BY experiment_id ORDER BY level DESC) AS sessions
FROM reached
GROUP BY experiment_id, level
ORDER BY experiment_id NULLS LAST, level
