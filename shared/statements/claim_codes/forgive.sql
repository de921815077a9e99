-- register with a right claim code: its try (register_claim_code_try.sql) is taken
-- back, so that only wrong codes count against the account. In the claim's
-- transaction (or on its own after a claim refused with 409, whose code was right).
UPDATE claim_code_attempts SET failed_at = array_remove(failed_at, CAST(:tried_at AS timestamptz))
WHERE user_id = :user_id
