-- create_claim_code by a guest (SPEC §13): store the new code's hash as the guest's
-- only code (replacing an earlier one), and say what happened in one row:
-- claimed NULL - no such guest (it has made no session); true - a user has claimed
-- it (no code is stored); false - stored, valid until expires_at.
-- FOR SHARE on the guest row, then the code's row: the order register takes them in
-- (FOR UPDATE), so a code is made either before a claim or not at all. A code_hash
-- that another visitor's code has already is a unique violation: the caller makes
-- another code.
WITH visitor AS (
    SELECT id, claimed_by IS NOT NULL AS claimed FROM guests WHERE key_hash = :key_hash FOR SHARE
), stored AS (
    INSERT INTO claim_codes (code_hash, guest_id, expires_at)
    SELECT :code_hash, id, now() + CAST(:ttl_seconds AS integer) * interval '1 second'
    FROM visitor WHERE NOT claimed
    ON CONFLICT (guest_id) DO UPDATE
    SET code_hash = EXCLUDED.code_hash, created_at = now(), expires_at = EXCLUDED.expires_at,
        used_at = NULL, used_by = NULL
    RETURNING expires_at
)
SELECT (SELECT claimed FROM visitor) AS claimed, (SELECT expires_at FROM stored) AS expires_at
