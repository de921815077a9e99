-- register with a claim code: which visitor the code names, read without a lock so
-- that the visitor's row can be locked first (register_lock_guest_by_id.sql,
-- register_lock_anonymous.sql) and the code's after it, in create_claim_code's order.
-- What is read here is checked again under the lock (register_claim_code_lock.sql).
SELECT guest_id, user_id FROM claim_codes WHERE code_hash = :code_hash
