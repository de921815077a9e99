-- get_study_stats at scale (SPEC §10): each session's figures, kept current by triggers as its
-- responses and uploads are written, so that the statistics read one row per session (and per
-- session and day) instead of every response (docs/design/researchers.md, "Counters").
--
-- Exact by construction: the only writers are the triggers below, on every statement that
-- inserts, deletes or truncates responses or uploads, or moves one to another session or level
-- or day, whichever function, command or hand runs it. A count grows by what a statement
-- inserted (INSERT ... ON CONFLICT DO UPDATE adds to the newest committed row, so concurrent
-- submissions to one session are each counted once); a delete or a move recounts its sessions
-- from their responses after locking them, as get_study_stats would have counted them. Visitor
-- numbers are not counted here (register and backfill renumber without touching a counter):
-- visitors are counted from `sessions`, which is cheap.

-- One row per session that has had a response or an upload; none for the others (read as zeros).
-- experiment_id is the session's, copied so that a study's counts are read without its sessions.
CREATE TABLE session_counts (
    session_id    UUID PRIMARY KEY REFERENCES sessions (id) ON DELETE CASCADE,
    experiment_id TEXT,
    responses     BIGINT NOT NULL DEFAULT 0,
    -- The highest level of its responses (NULL: none has a level), and every level reached:
    -- 0-62 as the bits of low_levels, higher ones (rare) in high_levels, ascending.
    highest_level INTEGER,
    low_levels    BIGINT NOT NULL DEFAULT 0,
    high_levels   INTEGER[] NOT NULL DEFAULT '{}',
    uploads       BIGINT NOT NULL DEFAULT 0
);
-- The few sessions with a level above 62, found without reading the others.
CREATE INDEX session_counts_high_levels_idx ON session_counts (experiment_id) WHERE high_levels <> '{}';

-- A session's responses per UTC day of their createdAt (the `daily` figures); experiment_id as above.
CREATE TABLE session_days (
    session_id    UUID NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    day           DATE NOT NULL,
    experiment_id TEXT,
    responses     BIGINT NOT NULL,
    PRIMARY KEY (session_id, day)
);
-- get_study_stats reads the last 30 days.
CREATE INDEX session_days_day_idx ON session_days (day);

-- The counts of the responses of sessions `ids` as they are now, after locking those sessions FOR
-- UPDATE: a response inserted before by a transaction still open (which holds its session's key
-- share lock, from the foreign key, or a share lock, as submit_response) is waited for and counted
-- here; one inserted after waits for this transaction and is added on top by count_new_responses.
-- Sessions that no longer exist (a cascade from their deletion) have nothing left to count.
CREATE FUNCTION recount_sessions(ids UUID[]) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    PERFORM FROM sessions WHERE id = ANY (ids) ORDER BY id FOR UPDATE;
    INSERT INTO session_counts AS c (session_id, experiment_id, responses, highest_level, low_levels, high_levels)
    SELECT s.id, s.experiment_id, r.responses, r.highest_level, r.low_levels, r.high_levels
    FROM sessions s
    CROSS JOIN LATERAL (
        SELECT count(*) AS responses, max(level) AS highest_level,
               coalesce(bit_or(1::bigint << level) FILTER (WHERE level < 63), 0) AS low_levels,
               coalesce(array_agg(DISTINCT level ORDER BY level) FILTER (WHERE level >= 63), '{}') AS high_levels
        FROM responses WHERE session_id = s.id
    ) r
    WHERE s.id = ANY (ids)
    ORDER BY s.id
    ON CONFLICT (session_id) DO UPDATE
    SET responses = excluded.responses, highest_level = excluded.highest_level,
        low_levels = excluded.low_levels, high_levels = excluded.high_levels;
    DELETE FROM session_days WHERE session_id = ANY (ids);
    INSERT INTO session_days (session_id, day, experiment_id, responses)
    SELECT r.session_id, (r.created_at AT TIME ZONE 'UTC')::date, s.experiment_id, count(*)
    FROM responses r
    JOIN sessions s ON s.id = r.session_id
    WHERE r.session_id = ANY (ids)
    GROUP BY 1, 2, 3;
END
$$;

-- After an INSERT into responses (submit_response's either form, or any other): add the new
-- responses to their sessions' counts, then to their days. Every writer takes a session's
-- session_counts row before its session_days rows, and sessions in id order, so that two
-- statements never wait for each other in a circle.
CREATE FUNCTION count_new_responses() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    WITH per_session AS (
        SELECT n.session_id, s.experiment_id, n.responses, n.highest_level, n.low_levels, n.high_levels
        FROM (SELECT session_id, count(*) AS responses, max(level) AS highest_level,
                     coalesce(bit_or(1::bigint << level) FILTER (WHERE level < 63), 0) AS low_levels,
                     coalesce(array_agg(DISTINCT level ORDER BY level) FILTER (WHERE level >= 63), '{}') AS high_levels
              FROM new_responses
              GROUP BY session_id) n
        JOIN sessions s ON s.id = n.session_id
    ), counted AS (
        INSERT INTO session_counts AS c (session_id, experiment_id, responses, highest_level, low_levels, high_levels)
        SELECT * FROM per_session
        ORDER BY session_id
        ON CONFLICT (session_id) DO UPDATE
        SET responses = c.responses + excluded.responses,
            highest_level = greatest(c.highest_level, excluded.highest_level),
            low_levels = c.low_levels | excluded.low_levels,
            high_levels = CASE WHEN excluded.high_levels = '{}' THEN c.high_levels
                               ELSE ARRAY(SELECT DISTINCT l FROM unnest(c.high_levels || excluded.high_levels) l ORDER BY l)
                          END
        RETURNING c.session_id, c.experiment_id
    )
    INSERT INTO session_days AS d (session_id, day, experiment_id, responses)
    SELECT r.session_id, (r.created_at AT TIME ZONE 'UTC')::date, c.experiment_id, count(*)
    FROM new_responses r
    JOIN counted c ON c.session_id = r.session_id
    GROUP BY 1, 2, 3
    ORDER BY 1, 2
    ON CONFLICT (session_id, day) DO UPDATE SET responses = d.responses + excluded.responses;
    RETURN NULL;
END
$$;

-- After a DELETE of responses (an erasure's, or the cascade of a session's deletion): recount.
CREATE FUNCTION recount_deleted_responses() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    PERFORM recount_sessions(ARRAY(SELECT DISTINCT session_id FROM old_responses));
    RETURN NULL;
END
$$;

-- After an UPDATE that moves a response to another session, level or time (no function does;
-- a hand-edit might): recount both sessions. A row trigger with a column list and a WHEN, so
-- that register's and backfill's renumbering (visitor_number only) never calls it, and no
-- UPDATE of responses keeps a transition table.
CREATE FUNCTION recount_moved_response() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    PERFORM recount_sessions(ARRAY[OLD.session_id, NEW.session_id]);
    RETURN NULL;
END
$$;

-- After a TRUNCATE of responses: no session has any.
CREATE FUNCTION forget_responses() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    UPDATE session_counts SET responses = 0, highest_level = NULL, low_levels = 0, high_levels = '{}'
    WHERE responses <> 0;
    DELETE FROM session_days;
    RETURN NULL;
END
$$;

CREATE TRIGGER responses_counted AFTER INSERT ON responses
REFERENCING NEW TABLE AS new_responses FOR EACH STATEMENT EXECUTE FUNCTION count_new_responses();
CREATE TRIGGER responses_recounted AFTER DELETE ON responses
REFERENCING OLD TABLE AS old_responses FOR EACH STATEMENT EXECUTE FUNCTION recount_deleted_responses();
CREATE TRIGGER responses_moved AFTER UPDATE OF session_id, level, created_at ON responses
FOR EACH ROW WHEN (OLD.session_id IS DISTINCT FROM NEW.session_id OR OLD.level IS DISTINCT FROM NEW.level
                   OR OLD.created_at IS DISTINCT FROM NEW.created_at)
EXECUTE FUNCTION recount_moved_response();
CREATE TRIGGER responses_truncated AFTER TRUNCATE ON responses
FOR EACH STATEMENT EXECUTE FUNCTION forget_responses();

-- Uploads (SPEC §16): a count needs no recount, so a delete or a move subtracts what it took
-- away (each UPDATE applies its change to the newest committed row: concurrent ones add up).
-- Sessions that no longer exist (a cascade from their deletion) are left out.
CREATE FUNCTION add_uploads(ids UUID[], deltas BIGINT[]) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    INSERT INTO session_counts AS c (session_id, experiment_id, uploads)
    SELECT s.id, s.experiment_id, t.delta
    FROM (SELECT session_id, sum(delta) AS delta FROM unnest(ids, deltas) AS t(session_id, delta) GROUP BY 1) t
    JOIN sessions s ON s.id = t.session_id
    ORDER BY s.id
    ON CONFLICT (session_id) DO UPDATE SET uploads = c.uploads + excluded.uploads;
END
$$;

CREATE FUNCTION count_new_uploads() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    PERFORM add_uploads(array_agg(session_id), array_agg(1::bigint)) FROM new_uploads;
    RETURN NULL;
END
$$;

CREATE FUNCTION uncount_deleted_uploads() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    PERFORM add_uploads(array_agg(session_id), array_agg(-1::bigint)) FROM old_uploads;
    RETURN NULL;
END
$$;

CREATE FUNCTION count_moved_upload() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    PERFORM add_uploads(ARRAY[OLD.session_id, NEW.session_id], ARRAY[-1, 1]::bigint[]);
    RETURN NULL;
END
$$;

CREATE FUNCTION forget_uploads() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    UPDATE session_counts SET uploads = 0 WHERE uploads <> 0;
    RETURN NULL;
END
$$;

CREATE TRIGGER uploads_counted AFTER INSERT ON uploads
REFERENCING NEW TABLE AS new_uploads FOR EACH STATEMENT EXECUTE FUNCTION count_new_uploads();
CREATE TRIGGER uploads_uncounted AFTER DELETE ON uploads
REFERENCING OLD TABLE AS old_uploads FOR EACH STATEMENT EXECUTE FUNCTION uncount_deleted_uploads();
CREATE TRIGGER uploads_moved AFTER UPDATE OF session_id ON uploads
FOR EACH ROW WHEN (OLD.session_id IS DISTINCT FROM NEW.session_id) EXECUTE FUNCTION count_moved_upload();
CREATE TRIGGER uploads_truncated AFTER TRUNCATE ON uploads
FOR EACH STATEMENT EXECUTE FUNCTION forget_uploads();

-- A session given another experimentId (no function does; a hand-edit might): its counts follow.
CREATE FUNCTION move_session_counts() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    UPDATE session_counts SET experiment_id = NEW.experiment_id WHERE session_id = NEW.id;
    UPDATE session_days SET experiment_id = NEW.experiment_id WHERE session_id = NEW.id;
    RETURN NULL;
END
$$;

CREATE TRIGGER sessions_experiment_moved AFTER UPDATE OF experiment_id ON sessions
FOR EACH ROW WHEN (OLD.experiment_id IS DISTINCT FROM NEW.experiment_id) EXECUTE FUNCTION move_session_counts();

-- The rows written before this file: counted once, here. CREATE TRIGGER above locked responses,
-- uploads and sessions against writes until this transaction ends, so nothing is written between
-- the count and the triggers' first run (writers wait: seconds at a million responses).
INSERT INTO session_counts (session_id, experiment_id, responses, highest_level, low_levels, high_levels)
SELECT r.session_id, s.experiment_id, count(*), max(r.level),
       coalesce(bit_or(1::bigint << r.level) FILTER (WHERE r.level < 63), 0),
       coalesce(array_agg(DISTINCT r.level ORDER BY r.level) FILTER (WHERE r.level >= 63), '{}')
FROM responses r
JOIN sessions s ON s.id = r.session_id
GROUP BY r.session_id, s.experiment_id;
INSERT INTO session_counts AS c (session_id, experiment_id, uploads)
SELECT u.session_id, s.experiment_id, count(*)
FROM uploads u
JOIN sessions s ON s.id = u.session_id
GROUP BY u.session_id, s.experiment_id
ON CONFLICT (session_id) DO UPDATE SET uploads = excluded.uploads;
INSERT INTO session_days (session_id, day, experiment_id, responses)
SELECT r.session_id, (r.created_at AT TIME ZONE 'UTC')::date, s.experiment_id, count(*)
FROM responses r
JOIN sessions s ON s.id = r.session_id
GROUP BY 1, 2, 3;

-- The functions read the counts (get_study_stats); only the triggers above write them, as the
-- tables' owner (SECURITY DEFINER, with a fixed search_path), so no role of the functions may.
GRANT SELECT ON session_counts, session_days TO visitor_functions;
