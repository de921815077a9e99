-- Studies' statistics and exports (SPEC §14.7): a session's status, test sessions left out of
-- exports unless asked for, and the sessions table with its study columns, shared by export_data's
-- statements (shared/statements/export/sessions*.sql) as exported_sessions() is.

-- A session's status as of `at` (SPEC §14.4): `completed` (completed_at set, whatever its outcome),
-- `started` (not completed, inside its lease: `lease_minutes` after its latest activity, its start
-- or its latest response) or `abandoned` (the lease is over). STABLE as timestamptz + interval is, so
-- that PostgreSQL inlines it into the statements that call it (called as a function, it costs some
-- microseconds per session: seconds for a study of 100,000).
CREATE FUNCTION session_status(completed_at timestamptz, latest_activity timestamptz, lease_minutes integer,
                               at timestamptz) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN completed_at IS NOT NULL THEN 'completed'
                WHEN latest_activity + make_interval(mins => lease_minutes) > at THEN 'started'
                ELSE 'abandoned'
           END
$$;

-- The sessions of one export (sql/004_research.sql), now without researchers' test runs unless
-- the filter says {"includeTest": true}.
CREATE OR REPLACE FUNCTION exported_sessions() RETURNS SETOF sessions
LANGUAGE sql STABLE AS $$
    SELECT s.*
    FROM sessions s,
         LATERAL (SELECT current_setting('visitors.export_filter')::jsonb AS f) filter
    WHERE ((f->>'everything')::boolean
           OR s.experiment_id IN (SELECT jsonb_array_elements_text(f->'experiments'))
           OR ((f->>'withoutExperiment')::boolean AND s.experiment_id IS NULL))
      AND (f->>'from' IS NULL OR s.created_at >= (f->>'from')::timestamptz)
      AND (f->>'to' IS NULL OR s.created_at < (f->>'to')::timestamptz)
      AND (NOT s.test OR coalesce((f->>'includeTest')::boolean, false))
$$;

-- The rows of sessions.csv (SPEC §10 and §14.7), one per exported session, oldest first: its
-- response count, highest level and upload count, its study columns with its status as of the
-- filter's `asOf` (the manifest's exportedAt), the platform it was started from (`none` without
-- one), and its platform participant id, which only export/sessions_with_ids_*.sql select.
CREATE FUNCTION exported_session_rows()
RETURNS TABLE (session_id uuid, visitor_number bigint, experiment_id text, registered boolean,
               created_at timestamptz, response_count bigint, max_level integer, upload_count bigint,
               metadata jsonb, condition text, status text, outcome text, completed_at timestamptz,
               platform text, test boolean, participant_id text)
LANGUAGE sql STABLE AS $$
    SELECT s.id, s.visitor_number, s.experiment_id, s.user_id IS NOT NULL, s.created_at,
           count(r.session_id), max(r.level),
           (SELECT count(*) FROM uploads u WHERE u.session_id = s.id),
           s.metadata, s.condition,
           session_status(s.completed_at, greatest(s.created_at, max(r.created_at)),
                          coalesce((e.config ->> 'leaseMinutes')::integer, 60),
                          (current_setting('visitors.export_filter')::jsonb ->> 'asOf')::timestamptz),
           s.outcome, s.completed_at, coalesce(p.platform, 'none'), s.test, p.participant_id
    FROM exported_sessions() s
    LEFT JOIN experiments e ON e.id = s.experiment_id  -- its lease: 60 minutes without a configuration
    LEFT JOIN responses r ON r.session_id = s.id
    LEFT JOIN session_participants p ON p.session_id = s.id
    GROUP BY s.id, s.visitor_number, s.experiment_id, s.user_id, s.created_at, s.metadata, s.condition,
             s.completed_at, s.outcome, s.test, p.platform, p.participant_id,
             coalesce((e.config ->> 'leaseMinutes')::integer, 60)
    ORDER BY s.created_at, s.id
$$;

-- get_study_stats leaves test sessions out of every figure but their count (SPEC §14.3): this
-- finds them without reading a study's other sessions.
CREATE INDEX sessions_test_idx ON sessions (experiment_id) WHERE test;
