-- register with a claim code: the code is used (single use), by this account. Its row
-- is locked (register_claim_code_lock.sql); the claim commits with it or not at all.
UPDATE claim_codes SET used_at = now(), used_by = :user_id WHERE code_hash = :code_hash
