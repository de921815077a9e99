-- Researchers (SPEC §10): the indexes that get_study_stats and export_data read by.
--
-- Both read a study's sessions, then its responses session by session. Responses are
-- found by session_id already (responses_session_id_idx of 001, which the foreign
-- key's ON DELETE CASCADE uses too); this index replaces it with one that also
-- carries each response's level and time, so that counting a study's responses, their
-- levels and their days is an index-only scan that never reads the responses
-- themselves (their `data` is most of the table). Same key, so every query and the
-- cascade use it as before; submit_response writes one index entry, as before.
--
-- CREATE INDEX takes a lock that makes writers to the table wait while it is built
-- (seconds for millions of rows). This file is applied by `make migrate` before the
-- functions are deployed, as every migration is.

CREATE INDEX responses_session_level_time_idx ON responses (session_id) INCLUDE (level, created_at);
DROP INDEX responses_session_id_idx;

-- A study is its sessions with one experimentId (or none), in one range of days.
CREATE INDEX sessions_experiment_created_idx ON sessions (experiment_id, created_at);

-- What export_data exports (SPEC §10), as SQL functions that its statements
-- (shared/statements/export/*.sql) share. PostgreSQL inlines such simple SQL
-- functions into the query that calls them, so they cost nothing at run time.

-- The sessions of one export: those its filter selects. The filter is set for the
-- export's transaction only, as JSON (set_config(..., is_local => true), in
-- export_settings.sql), because the statements run as COPY, which takes no
-- parameters: {"everything": bool, "experiments": [ids], "withoutExperiment": bool,
-- "from": time or null, "to": time or null}, from inclusive, to exclusive.
CREATE FUNCTION exported_sessions() RETURNS SETOF sessions
LANGUAGE sql STABLE AS $$
    SELECT s.*
    FROM sessions s,
         LATERAL (SELECT current_setting('visitors.export_filter')::jsonb AS f) filter
    WHERE ((f->>'everything')::boolean
           OR s.experiment_id IN (SELECT jsonb_array_elements_text(f->'experiments'))
           OR ((f->>'withoutExperiment')::boolean AND s.experiment_id IS NULL))
      AND (f->>'from' IS NULL OR s.created_at >= (f->>'from')::timestamptz)
      AND (f->>'to' IS NULL OR s.created_at < (f->>'to')::timestamptz)
$$;

-- The visitors of one export: each user or unclaimed guest with sessions among
-- exported_sessions(), its current number, its first session, how many it has
-- there, and the numbers folded into its number (visitor_merges), oldest first.
CREATE FUNCTION exported_visitors()
RETURNS TABLE (visitor_number bigint, registered boolean, first_session_at timestamptz, session_count bigint,
               merged_from bigint[])
LANGUAGE sql STABLE AS $$
    SELECT v.visitor_number, v.registered, v.first_session_at, v.session_count,
           ARRAY(SELECT m.from_number FROM visitor_merges m WHERE m.to_number = v.visitor_number ORDER BY m.from_number)
    FROM (SELECT s.visitor_number, s.user_id IS NOT NULL AS registered,
                 min(s.created_at) AS first_session_at, count(*) AS session_count
          FROM exported_sessions() s
          GROUP BY coalesce(s.user_id, s.guest_id::text), s.visitor_number, s.user_id IS NOT NULL) v
    ORDER BY v.visitor_number NULLS LAST, v.first_session_at
$$;

-- A CSV cell that a spreadsheet would run as a formula - one that starts with
-- = + - @, a tab or a carriage return - gets a leading apostrophe, which makes
-- Excel, LibreOffice and Google Sheets show it as text (OWASP, "CSV Injection").
-- shared/research/export.py applies the same rule to the cells it writes itself.
CREATE FUNCTION csv_text(value text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN left(value, 1) IN ('=', '+', '-', '@', E'\t', E'\r') THEN '''' || value ELSE value END
$$;

-- A time as RFC 3339 in UTC with microseconds, as shared/encodings.rfc3339 writes it.
CREATE FUNCTION utc_text(moment timestamptz) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT to_char(moment AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;
