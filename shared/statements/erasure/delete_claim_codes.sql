-- erasure of a user: the claim codes it redeemed (used_by is its uid) and its count of
-- wrong codes. Codes of its claimed guests and accounts go with their rows (CASCADE).
WITH codes AS (
    DELETE FROM claim_codes WHERE used_by = :user_id
)
DELETE FROM claim_code_attempts WHERE user_id = :user_id
