-- register with a claim code: the code, locked (its visitor is locked already).
-- FOR UPDATE: two accounts redeeming one code at once take it one after the other;
-- the second sees used_by set and is refused. A code replaced meanwhile by a new one
-- of the same visitor (create_claim_code) is gone: no row.
SELECT guest_id, user_id, used_by, expires_at > now() AS live
FROM claim_codes WHERE code_hash = :code_hash
FOR UPDATE
