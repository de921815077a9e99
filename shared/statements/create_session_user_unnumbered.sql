-- create_session for a registered user while numbering fails (nextval raised): the
-- same as create_session_user.sql with visitor number NULL (SPEC §3, graceful
-- degradation); the user's next session, register or the backfill numbers it.
-- The guest-creation limit (SPEC §12; sql/006_guest_limits.sql): a new visitor (no
-- row yet, and a sessionId not taken) is counted against its client address by
-- count_new_visitor (sql/007_count_new_visitor.sql) in `refused`, before `created` may
-- take a number. guest_limit 0 turns it off; address_hash is the address's HMAC. The
-- conditions are a one-time filter above the function: for anyone else it is never called.
-- Past the limit nothing is created or numbered, and the one row is 'limited' with
-- retry_after, the seconds until the address's oldest new guest leaves the rolling hour.
WITH erased AS (
    SELECT 1 FROM erased_sessions WHERE session_id = CAST(:session_id AS uuid)
), taken AS (
    SELECT 1 FROM sessions WHERE id = CAST(:session_id AS uuid)
    UNION ALL SELECT 1 FROM erased
), found AS (
    SELECT id, visitor_number, claimed_by IS NOT NULL AS claimed FROM users WHERE id = :user_id FOR SHARE
), new_visitor AS (
    SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM found) AND NOT EXISTS (SELECT 1 FROM taken)
), refused AS (
    SELECT c.retry_after
    FROM count_new_visitor(CAST(:address_hash AS bytea), CAST(:guest_limit AS integer)) AS c
    WHERE CAST(:guest_limit AS integer) > 0 AND EXISTS (SELECT 1 FROM new_visitor) AND NOT c.allowed
), created AS (
    INSERT INTO users (id, email, visitor_number)
    SELECT :user_id, :email, NULL::bigint
    WHERE NOT EXISTS (SELECT 1 FROM found) AND NOT EXISTS (SELECT 1 FROM taken) AND NOT EXISTS (SELECT 1 FROM refused)
    ON CONFLICT (id) DO NOTHING
    RETURNING id, visitor_number, false AS claimed
), numbered AS (
    UPDATE users SET visitor_number = NULL::bigint, updated_at = now()
    WHERE id = :user_id AND visitor_number IS NULL AND claimed_by IS NULL
      AND EXISTS (SELECT 1 FROM found) AND NOT EXISTS (SELECT 1 FROM taken)
    RETURNING id, visitor_number, false AS claimed
), visitor AS (
    SELECT * FROM numbered
    UNION ALL SELECT * FROM created
    UNION ALL SELECT * FROM found WHERE NOT EXISTS (SELECT 1 FROM numbered)
), inserted AS (
    INSERT INTO sessions (id, visitor_number, user_id, guest_id, experiment_id, metadata)
    SELECT CAST(:session_id AS uuid), visitor_number, id, NULL::uuid, :experiment_id, CAST(:metadata AS jsonb)
    FROM visitor WHERE NOT claimed AND NOT EXISTS (SELECT 1 FROM erased)
    ON CONFLICT (id) DO NOTHING
    RETURNING id, visitor_number, user_id, guest_id, experiment_id, created_at
)
SELECT 'created' AS outcome, id, visitor_number, user_id, guest_id, experiment_id, created_at,
       NULL::uuid AS visitor_guest_id, NULL::integer AS retry_after
FROM inserted
UNION ALL
SELECT 'claimed', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM visitor WHERE claimed
UNION ALL
SELECT 'exists', s.id, s.visitor_number, s.user_id, s.guest_id, s.experiment_id, s.created_at,
       (SELECT NULL::uuid FROM visitor), NULL
FROM sessions s
WHERE s.id = CAST(:session_id AS uuid) AND NOT EXISTS (SELECT 1 FROM inserted)
UNION ALL
SELECT 'erased', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM erased
UNION ALL
SELECT 'limited', NULL, NULL, NULL, NULL, NULL, NULL, NULL, retry_after FROM refused
