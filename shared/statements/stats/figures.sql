-- get_study_stats: one row per experiment in scope (`everything`, or those of `experiments` and,
-- with `without_experiment`, the sessions without one), in experimentId order, the sessions
-- without one last; with its days since `since` as parallel arrays (days without any are not in
-- them). Read-only.
--
-- Sessions are read once, grouped by visitor: a visitor is a user or an unclaimed guest (a
-- claimed guest's sessions are its user's); registered ones are users; a visitor is new on the
-- day of its first session in the experiment. Responses, uploads and levels come from the
-- counters that sql/010_study_counters.sql keeps per session and per session and day, never
-- from the responses or uploads themselves. shared/research/stats.py turns the level bits and
-- the histogram of highest levels into the funnel.
WITH visitors AS (
    SELECT s.experiment_id, s.user_id IS NOT NULL AS registered, count(*) AS sessions,
           min(s.created_at) AS first_session_at, max(s.created_at) AS last_session_at
    FROM sessions s
    WHERE CAST(:everything AS boolean)
       OR s.experiment_id = ANY (CAST(:experiments AS text[]))
       OR (CAST(:without_experiment AS boolean) AND s.experiment_id IS NULL)
    GROUP BY s.experiment_id, s.user_id, CASE WHEN s.user_id IS NULL THEN s.guest_id END
), people AS (
    SELECT experiment_id, count(*) AS visitors, count(*) FILTER (WHERE registered) AS registered_visitors,
           sum(sessions) AS sessions, min(first_session_at) AS first_session_at,
           max(last_session_at) AS last_session_at
    FROM visitors
    GROUP BY experiment_id
), counted AS (
    -- per experiment (whole = 1), and per experiment and highest level (whole = 0)
    SELECT experiment_id, highest_level, grouping(highest_level) AS whole, count(*) AS sessions,
           sum(responses) AS responses, sum(uploads) AS uploads, bit_or(low_levels) AS low_levels
    FROM session_counts
    WHERE CAST(:everything AS boolean)
       OR experiment_id = ANY (CAST(:experiments AS text[]))
       OR (CAST(:without_experiment AS boolean) AND experiment_id IS NULL)
    GROUP BY GROUPING SETS ((experiment_id), (experiment_id, highest_level))
), highest AS (
    -- how many sessions stopped at each highest level
    SELECT experiment_id, array_agg(highest_level ORDER BY highest_level) AS levels,
           array_agg(sessions ORDER BY highest_level) AS sessions
    FROM counted
    WHERE whole = 0 AND highest_level IS NOT NULL
    GROUP BY experiment_id
), high AS (
    -- the levels above 62 (session_counts_high_levels_idx: only the sessions that reached one)
    SELECT experiment_id, array_agg(DISTINCT level ORDER BY level) AS levels
    FROM session_counts, unnest(high_levels) AS level
    WHERE high_levels <> '{}'
      AND (CAST(:everything AS boolean)
           OR experiment_id = ANY (CAST(:experiments AS text[]))
           OR (CAST(:without_experiment AS boolean) AND experiment_id IS NULL))
    GROUP BY experiment_id
), days AS (
    SELECT experiment_id, day, sum(new_visitors) AS new_visitors, sum(sessions) AS sessions,
           sum(responses) AS responses
    FROM (
        SELECT experiment_id, (first_session_at AT TIME ZONE 'UTC')::date AS day, count(*) AS new_visitors,
               0 AS sessions, 0 AS responses
        FROM visitors
        WHERE first_session_at >= CAST(:since AS date) AT TIME ZONE 'UTC'
        GROUP BY 1, 2
        UNION ALL
        SELECT experiment_id, (created_at AT TIME ZONE 'UTC')::date, 0, count(*), 0
        FROM sessions
        WHERE created_at >= CAST(:since AS date) AT TIME ZONE 'UTC'
          AND (CAST(:everything AS boolean)
               OR experiment_id = ANY (CAST(:experiments AS text[]))
               OR (CAST(:without_experiment AS boolean) AND experiment_id IS NULL))
        GROUP BY 1, 2
        UNION ALL
        SELECT experiment_id, day, 0, 0, sum(responses)
        FROM session_days
        WHERE day >= CAST(:since AS date)
          AND (CAST(:everything AS boolean)
               OR experiment_id = ANY (CAST(:experiments AS text[]))
               OR (CAST(:without_experiment AS boolean) AND experiment_id IS NULL))
        GROUP BY 1, 2
    ) parts
    GROUP BY experiment_id, day
), daily AS (
    SELECT experiment_id, array_agg(day ORDER BY day) AS days,
           array_agg(new_visitors ORDER BY day) AS day_new_visitors,
           array_agg(sessions ORDER BY day) AS day_sessions,
           array_agg(responses ORDER BY day) AS day_responses
    FROM days
    GROUP BY experiment_id
)
SELECT p.experiment_id, p.visitors, p.registered_visitors, p.sessions,
       coalesce(c.responses, 0) AS responses, coalesce(c.uploads, 0) AS uploads,
       p.first_session_at, p.last_session_at,
       c.low_levels, high.levels AS high_levels, highest.levels AS highest_levels, highest.sessions AS highest_sessions,
       daily.days, daily.day_new_visitors, daily.day_sessions, daily.day_responses
FROM people p
LEFT JOIN counted c ON c.whole = 1 AND c.experiment_id IS NOT DISTINCT FROM p.experiment_id
LEFT JOIN highest ON highest.experiment_id IS NOT DISTINCT FROM p.experiment_id
LEFT JOIN high ON high.experiment_id IS NOT DISTINCT FROM p.experiment_id
LEFT JOIN daily ON daily.experiment_id IS NOT DISTINCT FROM p.experiment_id
ORDER BY p.experiment_id NULLS LAST
