-- export_data: visitors.csv (SPEC §10): each visitor of the exported sessions (a user,
-- or an unclaimed guest) with its current number, its first session and how many it
-- has among them, and the numbers folded into its number (visitor_merges). Streamed
-- by COPY; read-only, in the export's snapshot.
COPY (
    SELECT v.visitor_number AS "visitorNumber", v.registered::text AS "registered",
           utc_text(v.first_session_at) AS "firstSessionAt", v.session_count AS "sessionCount",
           array_to_json(ARRAY(SELECT m.from_number FROM visitor_merges m
                               WHERE m.to_number = v.visitor_number ORDER BY m.from_number)) AS "mergedFromVisitorNumbers"
    FROM (SELECT s.visitor_number, s.user_id IS NOT NULL AS registered,
                 min(s.created_at) AS first_session_at, count(*) AS session_count
          FROM exported_sessions() s
          GROUP BY coalesce(s.user_id, s.guest_id::text), s.visitor_number, s.user_id IS NOT NULL) v
    ORDER BY v.visitor_number NULLS LAST, v.first_session_at
) TO STDOUT WITH (FORMAT csv, HEADER)
