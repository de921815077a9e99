-- get_study_stats: each experiment's counts, first and last session, and its level
-- funnel's parts, for the experiments in scope (`everything`, or those of
-- `experiments` and, with `without_experiment`, the sessions without one). A visitor
-- is a user or an unclaimed guest (a claimed guest's sessions are its user's);
-- registered ones are users. Read-only, in the snapshot shared with study_stats_daily.
--
-- The responses are read once, in the order of their index on session_id (an
-- index-only scan: the index carries each response's level), each session's
-- aggregated as it passes: its count, its highest level and the levels it reached
-- (levels 0-62 as the bits of a bigint, higher ones, rare, as an array), so that no
-- step holds a million rows. shared/research/stats.py turns the bits and the histogram of
-- highest levels into the funnel.
WITH chosen AS (
    SELECT s.id, s.experiment_id, s.user_id, s.guest_id, s.created_at
    FROM sessions s
    WHERE CAST(:everything AS boolean)
       OR s.experiment_id = ANY (CAST(:experiments AS text[]))
       OR (CAST(:without_experiment AS boolean) AND s.experiment_id IS NULL)
), per_session AS (
    SELECT r.session_id, count(*) AS responses, max(r.level) AS highest,
           bit_or(1::bigint << r.level) FILTER (WHERE r.level < 63) AS low_levels,
           array_agg(DISTINCT r.level) FILTER (WHERE r.level >= 63) AS high_levels
    FROM responses r
    GROUP BY r.session_id
), joined AS MATERIALIZED (
    SELECT c.experiment_id, c.user_id, c.guest_id, c.created_at,
           p.responses, p.highest, p.low_levels, p.high_levels
    FROM chosen c
    LEFT JOIN per_session p ON p.session_id = c.id
), highest AS (
    -- how many sessions stopped at each highest level
    SELECT experiment_id, array_agg(highest ORDER BY highest) AS levels, array_agg(sessions ORDER BY highest) AS sessions
    FROM (SELECT experiment_id, highest, count(*) AS sessions
          FROM joined WHERE highest IS NOT NULL GROUP BY experiment_id, highest) h
    GROUP BY experiment_id
), high AS (
    SELECT experiment_id, array_agg(DISTINCT level) AS levels
    FROM joined, unnest(high_levels) AS level
    GROUP BY experiment_id
), totals AS (
    SELECT experiment_id,
           count(DISTINCT coalesce(user_id, guest_id::text)) AS visitors,
           count(DISTINCT user_id) AS registered_visitors,
           count(*) AS sessions,
           coalesce(sum(responses), 0) AS responses,
           min(created_at) AS first_session_at,
           max(created_at) AS last_session_at,
           bit_or(low_levels) AS low_levels
    FROM joined
    GROUP BY experiment_id
)
SELECT t.*, high.levels AS high_levels, highest.levels AS highest_levels, highest.sessions AS highest_sessions
FROM totals t
LEFT JOIN high ON high.experiment_id IS NOT DISTINCT FROM t.experiment_id
LEFT JOIN highest ON highest.experiment_id IS NOT DISTINCT FROM t.experiment_id
ORDER BY t.experiment_id NULLS LAST
