-- audit: each number and the number it resolves to through visitor_merges (itself when it was
-- never merged; a chain is followed to its end, a cycle no further than 64 steps).
WITH RECURSIVE walk (start, number, depth) AS (
    SELECT n, n, 0 FROM unnest(CAST(:numbers AS bigint[])) AS n
    UNION ALL
    SELECT w.start, m.to_number, w.depth + 1
    FROM walk w JOIN visitor_merges m ON m.from_number = w.number
    WHERE w.depth < 64
)
SELECT DISTINCT ON (start) start, number FROM walk ORDER BY start, depth DESC
