-- register: the guest now belongs to the user; create_session refuses its key from now on.
UPDATE guests SET claimed_by = :user_id, claimed_at = now() WHERE id = :guest_id
