-- export_data: visitors as JSON Lines (SPEC §10), as export_visitors_csv.sql. COPY's
-- text format doubles every backslash, which shared/export.py undoes. Read-only.
COPY (
    SELECT row_to_json(line)
    FROM (SELECT v.visitor_number AS "visitorNumber", v.registered AS "registered",
                 utc_text(v.first_session_at) AS "firstSessionAt", v.session_count AS "sessionCount",
                 array_to_json(ARRAY(SELECT m.from_number FROM visitor_merges m
                                     WHERE m.to_number = v.visitor_number ORDER BY m.from_number)) AS "mergedFromVisitorNumbers"
          FROM (SELECT s.visitor_number, s.user_id IS NOT NULL AS registered,
                       min(s.created_at) AS first_session_at, count(*) AS session_count
                FROM exported_sessions() s
                GROUP BY coalesce(s.user_id, s.guest_id::text), s.visitor_number, s.user_id IS NOT NULL) v
          ORDER BY v.visitor_number NULLS LAST, v.first_session_at) line
) TO STDOUT
