-- delete_my_data by a guest: its row, locked. FOR UPDATE, as register takes it:
-- create_session holds FOR SHARE on the guest row while it inserts a session, so
-- once this lock is held every session the guest started is committed and seen,
-- and a create_session that comes later waits for the erasure to commit and then
-- no longer finds this guest.
SELECT id, visitor_number, claimed_by FROM guests WHERE key_hash = :key_hash FOR UPDATE
