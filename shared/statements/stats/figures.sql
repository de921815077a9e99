-- get_study_stats: one row per experiment in scope (`everything`, or those of `experiments` and,
-- with `without_experiment`, the sessions without one) that has sessions or a configuration, in
-- experimentId order, the sessions without one last; with its days since `since` as parallel
-- arrays (days without any are not in them). Read-only.
--
-- Sessions are read once, grouped by visitor: a visitor is a user or an unclaimed guest (a
-- claimed guest's sessions are its user's); registered ones are users; a visitor is new on the
-- day of its first session in the experiment. Responses, uploads and levels come from the
-- counters that sql/010_study_counters.sql keeps per session and per session and day, never
-- from the responses or uploads themselves. shared/research/stats.py turns the level bits and
-- the histogram of highest levels into the funnel.
--
-- Researchers' test runs (SPEC §14.3) are in no figure but `test_sessions`: sessions_test_idx
-- finds them, and the counters' rows of those few sessions are left out.
--
-- A configured experiment (a row of `experiments`) also has its study figures (SPEC §14.7): its
-- sessions' status as of `now` (session_status(), sql/016_research.sql) overall and per
-- condition, the places each condition holds (participants, by their assignment, with a session
-- completed with outcome `completed` or started), its outcomes, and its Prolific deliveries.
-- Excluded sessions are counted apart, in no status. Only the configured experiments' sessions are
-- read again for them, once, with their counters' latest response, and grouped two ways in one
-- hashed pass (by_session): at 100k configured sessions that pass costs about as much as the rest
-- of the statement (docs/design/researchers.md); an experiment without a configuration costs nothing.
WITH tests AS (
    SELECT s.id, s.experiment_id
    FROM sessions s
    WHERE s.test
      AND (CAST(:everything AS boolean)
           OR s.experiment_id = ANY (CAST(:experiments AS text[]))
           OR (CAST(:without_experiment AS boolean) AND s.experiment_id IS NULL))
), visitors AS (
    SELECT s.experiment_id, s.user_id IS NOT NULL AS registered, count(*) AS sessions,
           min(s.created_at) AS first_session_at, max(s.created_at) AS last_session_at
    FROM sessions s
    WHERE NOT s.test
      AND (CAST(:everything AS boolean)
           OR s.experiment_id = ANY (CAST(:experiments AS text[]))
           OR (CAST(:without_experiment AS boolean) AND s.experiment_id IS NULL))
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
    WHERE (CAST(:everything AS boolean)
           OR experiment_id = ANY (CAST(:experiments AS text[]))
           OR (CAST(:without_experiment AS boolean) AND experiment_id IS NULL))
      AND session_id NOT IN (SELECT id FROM tests)
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
      AND session_id NOT IN (SELECT id FROM tests)
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
          AND NOT test
          AND (CAST(:everything AS boolean)
               OR experiment_id = ANY (CAST(:experiments AS text[]))
               OR (CAST(:without_experiment AS boolean) AND experiment_id IS NULL))
        GROUP BY 1, 2
        UNION ALL
        SELECT experiment_id, day, 0, 0, sum(responses)
        FROM session_days
        WHERE day >= CAST(:since AS date)
          AND session_id NOT IN (SELECT id FROM tests)
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
), configured AS (
    SELECT e.id AS experiment_id, e.config, coalesce((e.config ->> 'leaseMinutes')::integer, 60) AS lease_minutes
    FROM experiments e
    WHERE CAST(:everything AS boolean) OR e.id = ANY (CAST(:experiments AS text[]))
), by_session AS (
    -- one pass over the configured experiments' sessions, grouped two ways at once (hashed): by
    -- participant (experiment, condition, assignment; NULL for sessions without one), with its
    -- sessions by status as of `now` and whether it holds a place, test runs and excluded sessions
    -- left out; and by (experiment, test, outcome)
    SELECT s.experiment_id, s.condition, s.assignment_id, s.test, s.outcome,
           grouping(s.condition, s.assignment_id) = 0 AS by_participant, count(*) AS sessions,
           count(*) FILTER (WHERE x.counted AND x.status = 'started') AS started,
           count(*) FILTER (WHERE x.counted AND x.status = 'completed') AS completed,
           count(*) FILTER (WHERE x.counted AND x.status = 'abandoned') AS abandoned,
           coalesce(bool_or(x.counted AND (x.status = 'started' OR s.outcome = 'completed')), false) AS holds
    FROM configured e
    JOIN sessions s ON s.experiment_id = e.experiment_id
    LEFT JOIN session_counts c ON c.session_id = s.id
    CROSS JOIN LATERAL (
        SELECT NOT s.test AND s.outcome IS DISTINCT FROM 'excluded' AS counted,
               session_status(s.completed_at, greatest(s.created_at, c.last_response_at), e.lease_minutes,
                              CAST(:now AS timestamptz)) AS status
    ) x
    GROUP BY GROUPING SETS ((s.experiment_id, s.condition, s.assignment_id), (s.experiment_id, s.test, s.outcome))
), study AS (
    SELECT experiment_id, sum(started) AS started, sum(completed) AS completed, sum(abandoned) AS abandoned
    FROM by_session
    WHERE by_participant
    GROUP BY experiment_id
), per_condition AS (
    SELECT experiment_id,
           jsonb_object_agg(condition, jsonb_build_object(
               'places', places, 'started', started, 'completed', completed, 'abandoned', abandoned)) AS conditions
    FROM (SELECT experiment_id, condition, count(*) FILTER (WHERE holds AND assignment_id IS NOT NULL) AS places,
                 sum(started) AS started, sum(completed) AS completed, sum(abandoned) AS abandoned
          FROM by_session
          WHERE by_participant AND condition IS NOT NULL
          GROUP BY experiment_id, condition) c
    GROUP BY experiment_id
), outcomes AS (
    SELECT experiment_id, sum(sessions) FILTER (WHERE test) AS test_sessions,
           sum(sessions) FILTER (WHERE NOT test AND outcome = 'excluded') AS excluded,
           jsonb_object_agg(outcome, sessions) FILTER (WHERE NOT test AND outcome <> 'excluded') AS outcomes
    FROM by_session
    WHERE NOT by_participant
    GROUP BY experiment_id
), deliveries AS (
    SELECT d.experiment_id, count(*) FILTER (WHERE d.delivered_at IS NOT NULL) AS delivered,
           count(*) FILTER (WHERE d.delivered_at IS NULL AND d.failed_at IS NULL) AS pending,
           count(*) FILTER (WHERE d.delivered_at IS NULL AND d.failed_at IS NOT NULL) AS failed
    FROM completion_deliveries d
    JOIN configured e ON e.experiment_id = d.experiment_id
    GROUP BY d.experiment_id
), listed AS (
    -- the experiments with sessions (other than test runs), and the configured ones
    SELECT coalesce(p.experiment_id, e.experiment_id) AS experiment_id, p.visitors, p.registered_visitors,
           p.sessions, p.first_session_at, p.last_session_at, e.config
    FROM people p
    FULL JOIN configured e ON e.experiment_id = p.experiment_id
)
SELECT l.experiment_id, coalesce(l.visitors, 0) AS visitors, coalesce(l.registered_visitors, 0) AS registered_visitors,
       coalesce(l.sessions, 0) AS sessions, coalesce(c.responses, 0) AS responses, coalesce(c.uploads, 0) AS uploads,
       l.first_session_at, l.last_session_at,
       c.low_levels, high.levels AS high_levels, highest.levels AS highest_levels, highest.sessions AS highest_sessions,
       daily.days, daily.day_new_visitors, daily.day_sessions, daily.day_responses,
       l.config, outcomes.test_sessions, outcomes.excluded, study.started, study.completed, study.abandoned,
       per_condition.conditions, outcomes.outcomes,
       deliveries.delivered, deliveries.pending, deliveries.failed
FROM listed l
LEFT JOIN counted c ON c.whole = 1 AND c.experiment_id IS NOT DISTINCT FROM l.experiment_id
LEFT JOIN highest ON highest.experiment_id IS NOT DISTINCT FROM l.experiment_id
LEFT JOIN high ON high.experiment_id IS NOT DISTINCT FROM l.experiment_id
LEFT JOIN daily ON daily.experiment_id IS NOT DISTINCT FROM l.experiment_id
LEFT JOIN study ON study.experiment_id = l.experiment_id
LEFT JOIN per_condition ON per_condition.experiment_id = l.experiment_id
LEFT JOIN outcomes ON outcomes.experiment_id = l.experiment_id
LEFT JOIN deliveries ON deliveries.experiment_id = l.experiment_id
ORDER BY l.experiment_id NULLS LAST
