-- The audit (python -m shared.audit, SPEC §16) walks a bucket's uploads rows in the order the
-- bucket lists its objects, names compared byte by byte (COLLATE "C"), in keyset pages: this
-- index answers each page without sorting the table.
CREATE INDEX uploads_bucket_name_idx ON uploads (bucket, name COLLATE "C", generation);

-- Each session beside the number of its owner: the user's number when it has a user, otherwise
-- its guest's number as it resolves through visitor_merges, a chain followed to its end (a
-- session left behind by a claim carries the number its guest was merged into). The audit
-- counts the sessions whose number differs (audit/session_numbers.sql) and --repair sets it
-- (audit/repair_session_numbers.sql): one definition for both.
CREATE VIEW session_owner_numbers AS
WITH RECURSIVE chain (from_number, to_number, depth) AS (
    SELECT from_number, to_number, 1 FROM visitor_merges
    UNION ALL
    SELECT c.from_number, m.to_number, c.depth + 1
    FROM chain c JOIN visitor_merges m ON m.from_number = c.to_number
    WHERE c.depth < 64
),
resolved AS (
    SELECT DISTINCT ON (from_number) from_number, to_number FROM chain ORDER BY from_number, depth DESC
)
SELECT s.id, s.visitor_number, s.created_at,
       COALESCE(u.visitor_number, CASE WHEN s.user_id IS NULL THEN COALESCE(r.to_number, g.visitor_number) END)
           AS owner_number
FROM sessions s
LEFT JOIN users u ON u.id = s.user_id
LEFT JOIN guests g ON g.id = s.guest_id
LEFT JOIN resolved r ON r.from_number = g.visitor_number;

GRANT SELECT ON session_owner_numbers TO visitor_functions;
