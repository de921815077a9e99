-- Visitor numbers, guests, users, sessions and responses (SPEC §6).

-- One number per visitor, unique across every function instance.
-- CACHE 1 so that numbers are handed out in order across connections.
CREATE SEQUENCE visitor_number_seq AS BIGINT START 1 INCREMENT 1 CACHE 1;

CREATE TABLE users (
    id             TEXT PRIMARY KEY,                 -- Firebase uid
    email          TEXT,
    display_name   TEXT,
    visitor_number BIGINT UNIQUE,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE guests (
    id             UUID PRIMARY KEY,                 -- public guestId
    key_hash       BYTEA NOT NULL UNIQUE,            -- SHA-256 of X-Guest-Key; the key itself is never stored
    visitor_number BIGINT UNIQUE,
    claimed_by     TEXT REFERENCES users(id) ON DELETE SET NULL,
    claimed_at     TIMESTAMPTZ,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT guests_key_hash_is_sha256 CHECK (octet_length(key_hash) = 32)
);

CREATE TABLE sessions (
    id             UUID PRIMARY KEY,
    visitor_number BIGINT,
    user_id        TEXT REFERENCES users(id) ON DELETE SET NULL,
    guest_id       UUID REFERENCES guests(id),
    experiment_id  TEXT,
    metadata       JSONB NOT NULL DEFAULT '{}'::jsonb,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX sessions_visitor_number_idx ON sessions (visitor_number);
CREATE INDEX sessions_user_id_idx ON sessions (user_id);
CREATE INDEX sessions_guest_id_idx ON sessions (guest_id);

CREATE TABLE responses (
    id             UUID PRIMARY KEY,
    session_id     UUID NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    visitor_number BIGINT,
    level          INTEGER CHECK (level >= 0),
    data           JSONB NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX responses_session_id_idx ON responses (session_id);
CREATE INDEX responses_visitor_number_idx ON responses (visitor_number);

-- When a registered user who already had a number claims a guest, the guest's
-- number is folded into the user's; queries by the old number resolve through here.
CREATE TABLE visitor_merges (
    from_number BIGINT PRIMARY KEY,
    to_number   BIGINT NOT NULL,
    user_id     TEXT REFERENCES users(id) ON DELETE SET NULL,
    merged_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
