-- erasure: the ledger row, as delete_my_data, erase_visitor and `status` report it.
SELECT id, visitor_number, requested_by, requested_at, completed_at, sessions, responses, uploads, objects,
       attempts, last_attempt_at
FROM erasures WHERE id = CAST(:erasure_id AS uuid)
