-- erasure: the merges into or out of any of the visitor's numbers, or made by its user.
DELETE FROM visitor_merges
WHERE from_number = ANY(CAST(:numbers AS bigint[])) OR to_number = ANY(CAST(:numbers AS bigint[]))
   OR user_id = :user_id
