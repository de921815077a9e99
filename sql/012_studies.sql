-- Studies (SPEC §14): configured experiments, one assignment per participant, completion, the
-- platform ids a session was started with, the participation ledger that outlives an erasure,
-- and Prolific deliveries (docs/design/studies.md).

-- One configuration per experimentId: the document configure_experiment takes, codes included
-- (the researcher's secrets: read by the functions, never exported). An experimentId without a
-- row is a free label, as before.
CREATE TABLE experiments (
    id         TEXT PRIMARY KEY,
    config     JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- One row per participant and configured experiment: a platform participant (platform,
-- participant_id) or a session owner (user_id or guest_id), with its condition (NULL when the
-- experiment has none). Deleted with its owner or by an erasure; test sessions have none.
CREATE TABLE assignments (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    experiment_id  TEXT NOT NULL REFERENCES experiments (id),
    platform       TEXT NOT NULL DEFAULT 'none' CHECK (platform IN ('none', 'prolific', 'sona', 'mturk')),
    participant_id TEXT,
    user_id        TEXT REFERENCES users (id) ON DELETE CASCADE,
    guest_id       UUID REFERENCES guests (id) ON DELETE CASCADE,
    condition      TEXT,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK ((platform = 'none') = (participant_id IS NULL)),
    CHECK (participant_id IS NOT NULL OR num_nonnulls(user_id, guest_id) = 1)
);
CREATE UNIQUE INDEX assignments_platform_participant_idx ON assignments (experiment_id, platform, participant_id)
    WHERE participant_id IS NOT NULL;
CREATE UNIQUE INDEX assignments_user_idx ON assignments (experiment_id, user_id)
    WHERE participant_id IS NULL AND user_id IS NOT NULL;
CREATE UNIQUE INDEX assignments_guest_idx ON assignments (experiment_id, guest_id)
    WHERE participant_id IS NULL AND guest_id IS NOT NULL;
CREATE INDEX assignments_user_id_idx ON assignments (user_id) WHERE user_id IS NOT NULL;
CREATE INDEX assignments_guest_id_idx ON assignments (guest_id) WHERE guest_id IS NOT NULL;

-- A session of a configured experiment: its participant's assignment (NULL for a test run and
-- for sessions stored before the experiment was configured), its condition, whether it is a
-- researcher's test run, and its completion: completed_at, outcome (`excluded` when a researcher
-- excluded it) and complete_session's answer, returned as stored on a repeat.
ALTER TABLE sessions
    ADD COLUMN assignment_id BIGINT REFERENCES assignments (id) ON DELETE SET NULL,
    ADD COLUMN condition     TEXT,
    ADD COLUMN test          BOOLEAN NOT NULL DEFAULT false,
    ADD COLUMN completed_at  TIMESTAMPTZ,
    ADD COLUMN outcome       TEXT,
    ADD COLUMN completion    JSONB,
    ADD CONSTRAINT sessions_completed_check CHECK ((completed_at IS NULL) = (outcome IS NULL));
CREATE INDEX sessions_assignment_id_idx ON sessions (assignment_id) WHERE assignment_id IS NOT NULL;

-- The platform ids a session was started with (SPEC §14.3): personal data, erased with the
-- session, exported only with participantIds=true, never logged.
CREATE TABLE session_participants (
    session_id     UUID PRIMARY KEY REFERENCES sessions (id) ON DELETE CASCADE,
    platform       TEXT NOT NULL CHECK (platform IN ('prolific', 'sona', 'mturk')),
    participant_id TEXT NOT NULL,
    study_id       TEXT,
    submission_id  TEXT,
    assignment_id  TEXT,
    hit_id         TEXT,
    turk_submit_to TEXT
);

-- Who has completed a session of an experiment, as a keyed hash of the participant (HMAC-SHA256;
-- nothing readable): already_participated survives the participant's withdrawal. Never erased.
CREATE TABLE participation_ledger (
    experiment_id    TEXT NOT NULL,
    participant_hash BYTEA NOT NULL,
    completed_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (experiment_id, participant_hash)
);

-- Prolific completions made from the server (SPEC §14.5). No foreign key: a delivery pending
-- when its session is erased stays until it is delivered or failed, then the erasure deletes it.
CREATE TABLE completion_deliveries (
    session_id      UUID PRIMARY KEY,
    experiment_id   TEXT NOT NULL,
    submission_id   TEXT NOT NULL,
    completion_code TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    delivered_at    TIMESTAMPTZ,
    failed_at       TIMESTAMPTZ,
    last_error      TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX completion_deliveries_due_idx ON completion_deliveries (next_attempt_at)
    WHERE delivered_at IS NULL AND failed_at IS NULL;

-- A session's latest response time, for its lease (SPEC §14, Words: a session not completed holds
-- its place for leaseMinutes after its start or its latest response), kept by the counters'
-- triggers of sql/010 like its other figures.
ALTER TABLE session_counts ADD COLUMN last_response_at TIMESTAMPTZ;

CREATE OR REPLACE FUNCTION recount_sessions(ids UUID[]) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    PERFORM FROM sessions WHERE id = ANY (ids) ORDER BY id FOR UPDATE;
    INSERT INTO session_counts AS c (session_id, experiment_id, responses, highest_level, low_levels, high_levels,
                                     last_response_at)
    SELECT s.id, s.experiment_id, r.responses, r.highest_level, r.low_levels, r.high_levels, r.last_response_at
    FROM sessions s
    CROSS JOIN LATERAL (
        SELECT count(*) AS responses, max(level) AS highest_level,
               coalesce(bit_or(1::bigint << level) FILTER (WHERE level < 63), 0) AS low_levels,
               coalesce(array_agg(DISTINCT level ORDER BY level) FILTER (WHERE level >= 63), '{}') AS high_levels,
               max(created_at) AS last_response_at
        FROM responses WHERE session_id = s.id
    ) r
    WHERE s.id = ANY (ids)
    ORDER BY s.id
    ON CONFLICT (session_id) DO UPDATE
    SET responses = excluded.responses, highest_level = excluded.highest_level,
        low_levels = excluded.low_levels, high_levels = excluded.high_levels,
        last_response_at = excluded.last_response_at;
    DELETE FROM session_days WHERE session_id = ANY (ids);
    INSERT INTO session_days (session_id, day, experiment_id, responses)
    SELECT r.session_id, (r.created_at AT TIME ZONE 'UTC')::date, s.experiment_id, count(*)
    FROM responses r
    JOIN sessions s ON s.id = r.session_id
    WHERE r.session_id = ANY (ids)
    GROUP BY 1, 2, 3;
END
$$;

CREATE OR REPLACE FUNCTION count_new_responses() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    WITH per_session AS (
        SELECT n.session_id, s.experiment_id, n.responses, n.highest_level, n.low_levels, n.high_levels,
               n.last_response_at
        FROM (SELECT session_id, count(*) AS responses, max(level) AS highest_level,
                     coalesce(bit_or(1::bigint << level) FILTER (WHERE level < 63), 0) AS low_levels,
                     coalesce(array_agg(DISTINCT level ORDER BY level) FILTER (WHERE level >= 63), '{}') AS high_levels,
                     max(created_at) AS last_response_at
              FROM new_responses
              GROUP BY session_id) n
        JOIN sessions s ON s.id = n.session_id
    ), counted AS (
        INSERT INTO session_counts AS c (session_id, experiment_id, responses, highest_level, low_levels, high_levels,
                                         last_response_at)
        SELECT * FROM per_session
        ORDER BY session_id
        ON CONFLICT (session_id) DO UPDATE
        SET responses = c.responses + excluded.responses,
            highest_level = greatest(c.highest_level, excluded.highest_level),
            low_levels = c.low_levels | excluded.low_levels,
            high_levels = CASE WHEN excluded.high_levels = '{}' THEN c.high_levels
                               ELSE ARRAY(SELECT DISTINCT l FROM unnest(c.high_levels || excluded.high_levels) l ORDER BY l)
                          END,
            last_response_at = greatest(c.last_response_at, excluded.last_response_at)
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

UPDATE session_counts c SET last_response_at = (SELECT max(created_at) FROM responses r WHERE r.session_id = c.session_id)
WHERE c.responses > 0;

GRANT SELECT, INSERT, UPDATE ON experiments, assignments, session_participants, completion_deliveries TO visitor_functions;
GRANT SELECT, INSERT ON participation_ledger TO visitor_functions;
GRANT DELETE ON assignments, session_participants, completion_deliveries TO visitor_erasure;
