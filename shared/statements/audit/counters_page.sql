-- audit: the next page of current numbers (those of sessions and of uploads rows),
-- each with its uploads rows counted (GROUP BY), its latest upload, and the numbers merged into
-- it (visitor_merges walked backwards), whose visitors/{n} counters add up to its own.
WITH RECURSIVE page (number) AS (
    SELECT number FROM (
        (SELECT DISTINCT visitor_number FROM sessions
         WHERE visitor_number > :after ORDER BY visitor_number LIMIT :limit)
        UNION
        (SELECT DISTINCT visitor_number FROM uploads
         WHERE visitor_number > :after ORDER BY visitor_number LIMIT :limit)
    ) AS numbers (number)
    ORDER BY number LIMIT :limit
),
merged (number, from_number, depth) AS (
    SELECT number, number, 0 FROM page
    UNION ALL
    SELECT m2.number, vm.from_number, m2.depth + 1
    FROM merged m2 JOIN visitor_merges vm ON vm.to_number = m2.from_number
    WHERE m2.depth < 64
),
counted AS (
    SELECT up.visitor_number AS number, count(*) AS rows, max(up.uploaded_at) AS last_upload_at
    FROM uploads up JOIN page p ON p.number = up.visitor_number
    GROUP BY up.visitor_number
)
SELECT p.number, COALESCE(c.rows, 0) AS rows, c.last_upload_at,
       ARRAY(SELECT DISTINCT m.from_number FROM merged m
             WHERE m.number = p.number AND m.from_number <> p.number ORDER BY 1) AS merged_from
FROM page p LEFT JOIN counted c ON c.number = p.number
ORDER BY p.number
