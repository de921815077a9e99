-- create_session for a guest (X-Guest-Key), numbered: find or create the guest,
-- give it the next visitor number if it has none, insert the session, and say
-- what happened (shared/visitors/sessions.py):
--   created - the session is new;
--   exists  - a session with this id was there before (a retry, or someone else's);
--   claimed - the guest has been claimed by a registered user;
--   erased  - the sessionId is of an erased session (a tombstone, SPEC §11): it
--             is never created again, and no visitor is created or numbered.
-- No row at all: the guest was being created by a concurrent request; run it again.
--
-- FOR NO KEY UPDATE on the guest row (for the session limit below; FOR SHARE before
-- it): register takes it FOR UPDATE before moving the guest's sessions, so a session is either inserted before the claim (and moved
-- by it) or sees the claim and is refused. No session is left behind.
-- `taken`: a request naming a sessionId that exists already is a retry or a
-- conflict, and creates or numbers no visitor: a refused request changes nothing.
-- The guest-creation limit (SPEC §12; sql/006_guest_limits.sql): a new visitor (no
-- row yet, and a sessionId not taken) is counted against its client address in
-- `counted` before `created` may take a number. guest_limit 0 turns it off;
-- address_hash is the address's HMAC. Past the limit nothing is created or numbered,
-- and the one row is 'limited' with retry_after, the seconds until the address's
-- oldest new guest leaves the rolling hour. `expired` forgets two addresses whose
-- window is over (not this one's: a statement changes a row once).
-- The session limit (SPEC §12; sql/008_session_limit.sql): an existing visitor's row is
-- locked FOR NO KEY UPDATE in `found`, which so reads its newest version (and its newest
-- session_times) even when another create_session of the visitor committed while this one
-- waited; `session_window` is its sessions of the rolling hour. At session_limit of them
-- (0: no limit) nothing is written or numbered, and the one row is 'session_limited' with
-- retry_after, the seconds until enough of them leave the hour for one more. Otherwise
-- `numbered` appends now() to the window (and numbers the visitor if it has no number).
-- A retry of an existing sessionId (`taken`) is never counted.
-- Studies (SPEC §14): a new session of a configured experiment (a row in `experiments`) is
-- admitted by shared/studies/admission.py, which holds the experiment's row and then runs this
-- statement with admitted true in its transaction. With admitted false such a session is not
-- written here: nothing is counted, created or numbered, and the one row is 'configured'. A retry
-- (`taken`) is answered as before, with the stored session's condition.
WITH erased AS (
    SELECT 1 FROM erased_sessions WHERE session_id = CAST(:session_id AS uuid)
), taken AS (
    SELECT 1 FROM sessions WHERE id = CAST(:session_id AS uuid)
    UNION ALL SELECT 1 FROM erased
), configured AS (
    SELECT 1 FROM experiments
    WHERE id = :experiment_id AND NOT CAST(:admitted AS boolean) AND NOT EXISTS (SELECT 1 FROM taken)
), no_new_session AS (
    SELECT 1 FROM taken
    UNION ALL SELECT 1 FROM configured
), found AS (
    SELECT id, visitor_number, claimed_by IS NOT NULL AS claimed, session_times
    FROM guests WHERE key_hash = :key_hash FOR NO KEY UPDATE
), session_window AS (
    SELECT guest_limit_window(session_times, now() - CAST(:window_seconds AS integer) * interval '1 second') AS times
    FROM found WHERE NOT claimed AND NOT EXISTS (SELECT 1 FROM no_new_session)
), session_refused AS (
    SELECT CAST(ceil(extract(epoch FROM times[cardinality(times) - CAST(:session_limit AS integer) + 1]
                 + CAST(:window_seconds AS integer) * interval '1 second' - now())) AS integer) AS retry_after
    FROM session_window
    WHERE CAST(:session_limit AS integer) > 0 AND cardinality(times) >= CAST(:session_limit AS integer)
), new_visitor AS (
    SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM found) AND NOT EXISTS (SELECT 1 FROM no_new_session)
), counted AS (
    INSERT INTO guest_limits AS g (address_hash, created_at, last_at)
    SELECT CAST(:address_hash AS bytea), ARRAY[now()], now()
    WHERE CAST(:guest_limit AS integer) > 0 AND EXISTS (SELECT 1 FROM new_visitor)
    ON CONFLICT (address_hash) DO UPDATE
    SET (allowed, created_at, last_at) = (
        SELECT w.allowed, CASE WHEN w.allowed THEN w.times || now() ELSE w.times END,
               CASE WHEN w.allowed THEN now() ELSE g.last_at END
        FROM (SELECT times, cardinality(times) < CAST(:guest_limit AS integer) AS allowed
              FROM guest_limit_window(g.created_at, now() - CAST(:window_seconds AS integer) * interval '1 second') AS times) AS w)
    RETURNING allowed, created_at[1] AS oldest
), refused AS (
    SELECT CAST(ceil(extract(epoch FROM oldest + CAST(:window_seconds AS integer) * interval '1 second' - now())) AS integer) AS retry_after
    FROM counted WHERE NOT allowed
), expired AS (
    DELETE FROM guest_limits WHERE address_hash IN (
        SELECT address_hash FROM guest_limits
        WHERE last_at < now() - CAST(:window_seconds AS integer) * interval '1 second' AND address_hash <> CAST(:address_hash AS bytea)
          AND EXISTS (SELECT 1 FROM counted)
        ORDER BY last_at LIMIT 2 FOR UPDATE SKIP LOCKED)
), created AS (
    INSERT INTO guests (id, key_hash, visitor_number, session_times)
    SELECT CAST(:new_guest_id AS uuid), :key_hash, nextval('visitor_number_seq'), CASE WHEN CAST(:session_limit AS integer) > 0 THEN ARRAY[now()] ELSE CAST('{}' AS timestamptz[]) END
    WHERE NOT EXISTS (SELECT 1 FROM found) AND NOT EXISTS (SELECT 1 FROM no_new_session) AND NOT EXISTS (SELECT 1 FROM refused)
    ON CONFLICT (key_hash) DO NOTHING
    RETURNING id, visitor_number, false AS claimed
), numbered AS (
    UPDATE guests SET visitor_number = coalesce(visitor_number, nextval('visitor_number_seq')),
        session_times = CASE WHEN CAST(:session_limit AS integer) > 0
                             THEN (SELECT times FROM session_window) || now() ELSE session_times END
    WHERE key_hash = :key_hash AND claimed_by IS NULL AND (visitor_number IS NULL OR CAST(:session_limit AS integer) > 0)
      AND EXISTS (SELECT 1 FROM found) AND NOT EXISTS (SELECT 1 FROM no_new_session) AND NOT EXISTS (SELECT 1 FROM session_refused)
    RETURNING id, visitor_number, false AS claimed
), visitor AS (
    SELECT * FROM numbered
    UNION ALL SELECT * FROM created
    UNION ALL SELECT id, visitor_number, claimed FROM found WHERE NOT EXISTS (SELECT 1 FROM numbered)
), inserted AS (
    INSERT INTO sessions (id, visitor_number, user_id, guest_id, experiment_id, metadata)
    SELECT CAST(:session_id AS uuid), visitor_number, NULL, id, :experiment_id, CAST(:metadata AS jsonb)
    FROM visitor WHERE NOT claimed AND NOT EXISTS (SELECT 1 FROM erased) AND NOT EXISTS (SELECT 1 FROM session_refused)
      AND NOT EXISTS (SELECT 1 FROM configured)
    ON CONFLICT (id) DO NOTHING
    RETURNING id, visitor_number, user_id, guest_id, experiment_id, created_at
)
SELECT 'created' AS outcome, id, visitor_number, user_id, guest_id, experiment_id, created_at,
       NULL::uuid AS visitor_guest_id, NULL::integer AS retry_after, NULL::text AS condition
FROM inserted
UNION ALL
SELECT 'claimed', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM visitor WHERE claimed
UNION ALL
SELECT 'exists', s.id, s.visitor_number, s.user_id, s.guest_id, s.experiment_id, s.created_at,
       (SELECT id FROM visitor), NULL, s.condition
FROM sessions s
WHERE s.id = CAST(:session_id AS uuid) AND NOT EXISTS (SELECT 1 FROM inserted)
UNION ALL
SELECT 'erased', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM erased
UNION ALL
SELECT 'limited', NULL, NULL, NULL, NULL, NULL, NULL, NULL, retry_after, NULL FROM refused
UNION ALL
SELECT 'session_limited', NULL, NULL, NULL, NULL, NULL, NULL, NULL, retry_after, NULL FROM session_refused
UNION ALL
SELECT 'configured', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM configured
