-- get_visitor: the guest caller's visitor record (claimed_by set: it belongs to a user now).
SELECT id, visitor_number, claimed_by FROM guests WHERE key_hash = :key_hash
