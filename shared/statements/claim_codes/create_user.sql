-- create_claim_code by an anonymous account (SPEC §13): as create_claim_code_guest.sql,
-- for the account's users row (FOR SHARE, then the code's row: register's order).
WITH visitor AS (
    SELECT id, claimed_by IS NOT NULL AS claimed FROM users WHERE id = :user_id FOR SHARE
), stored AS (
    INSERT INTO claim_codes (code_hash, user_id, expires_at)
    SELECT :code_hash, id, now() + CAST(:ttl_seconds AS integer) * interval '1 second'
    FROM visitor WHERE NOT claimed
    ON CONFLICT (user_id) DO UPDATE
    SET code_hash = EXCLUDED.code_hash, created_at = now(), expires_at = EXCLUDED.expires_at,
        used_at = NULL, used_by = NULL
    RETURNING expires_at
)
SELECT (SELECT claimed FROM visitor) AS claimed, (SELECT expires_at FROM stored) AS expires_at
