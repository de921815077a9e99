-- erasure: its ledger row, in the transaction that deleted the rows it counts.
INSERT INTO erasures (id, visitor_number, merged_numbers, requested_by, sessions, responses, uploads)
VALUES (CAST(:erasure_id AS uuid), :visitor_number, CAST(:merged_numbers AS bigint[]), :requested_by,
        :sessions, :responses, :uploads)
RETURNING requested_at
