-- export_my_data: the guest caller's own record (claimed_by set: it belongs to a user now).
SELECT id, visitor_number, claimed_by FROM guests WHERE key_hash = :key_hash
