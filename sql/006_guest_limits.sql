-- Abuse limits and the guest lifecycle (SPEC §12): the guest-creation limit per client
-- address, and retention of empty, inactive guests through the erasure ledger.
--
-- The guest-creation limit. One row per client address that made a new guest (a guest
-- key never seen before, or a Firebase anonymous account's first session) in the last
-- hour: the address only as HMAC-SHA256 with the secret GUEST_LIMIT_KEY (never the
-- address), and the times of its new guests in the rolling hour, at most the limit of
-- them. create_session's statement counts a new guest here before it takes a number:
-- INSERT ... ON CONFLICT DO UPDATE locks the address's row and reads its newest
-- version, so first sessions from one address are counted one after the other on any
-- number of instances, and a refused one takes no number. A row whose newest time is
-- over an hour old says nothing any more: create_session deletes two such rows of
-- other addresses each time it counts a new guest, and run_maintenance the rest.
CREATE TABLE guest_limits (
    address_hash BYTEA PRIMARY KEY,
    -- The times of this address's new guests in the window, oldest first.
    created_at   TIMESTAMPTZ[] NOT NULL,
    -- The newest of them: the row is useless once this is an hour old.
    last_at      TIMESTAMPTZ NOT NULL,
    -- Whether the address's last first session was let through (what the statement answers).
    allowed      BOOLEAN NOT NULL DEFAULT true,
    CONSTRAINT guest_limits_address_hash_is_hmac_sha256 CHECK (octet_length(address_hash) = 32)
);
CREATE INDEX guest_limits_last_at_idx ON guest_limits (last_at);

-- The times of `times` after `since`, oldest first: an address's window as it stands.
CREATE FUNCTION guest_limit_window(times TIMESTAMPTZ[], since TIMESTAMPTZ) RETURNS TIMESTAMPTZ[]
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN ARRAY(SELECT t FROM unnest(times) AS t WHERE t > since ORDER BY t);

-- The functions count and forget addresses: they may delete from this table, and only
-- this one (the expired rows; nothing in it is a record of anything).
GRANT SELECT, INSERT, UPDATE, DELETE ON guest_limits TO visitor_functions;

-- Retention (GUEST_RETENTION_DAYS): an erasure the maintenance function made for an
-- empty, unclaimed, inactive guest is recorded as requested by 'retention'.
ALTER TABLE erasures DROP CONSTRAINT erasures_requested_by_check;
ALTER TABLE erasures ADD CONSTRAINT erasures_requested_by_check
    CHECK (requested_by IN ('visitor', 'researcher', 'retention'));

-- Retention reads unclaimed guests oldest first.
CREATE INDEX guests_unclaimed_created_idx ON guests (created_at) WHERE claimed_by IS NULL;
