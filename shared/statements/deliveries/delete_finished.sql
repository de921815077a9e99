-- erasure: the deliveries of the erased sessions that are delivered or failed. A pending one stays
-- until it is (SPEC §14.5); the deliveries task then deletes it (forget_erased.sql).
DELETE FROM completion_deliveries
WHERE session_id = ANY(CAST(:session_ids AS uuid[])) AND (delivered_at IS NOT NULL OR failed_at IS NOT NULL)
