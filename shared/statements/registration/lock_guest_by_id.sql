-- register with a guest's claim code: the guest to claim, locked, found by the id the
-- code names. FOR UPDATE for the same reasons as register_lock_guest.sql; taken
-- before the code's own row (register_claim_code_lock.sql), the order in which
-- create_claim_code takes them too (guest row, then its code).
SELECT id, visitor_number, claimed_by FROM guests WHERE id = CAST(:guest_id AS uuid) FOR UPDATE
