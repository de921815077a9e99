-- erasure: the numbers folded into the visitor's (visitor_merges), retired with it.
SELECT from_number FROM visitor_merges
WHERE to_number = ANY(CAST(:numbers AS bigint[])) OR user_id = :user_id
ORDER BY from_number
