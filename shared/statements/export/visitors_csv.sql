-- export_data: visitors.csv (SPEC §10), the rows of exported_visitors() (sql/004_research.sql).
-- Streamed by COPY; read-only, in the export's snapshot.
COPY (
    SELECT visitor_number AS "visitorNumber", registered::text AS "registered",
           utc_text(first_session_at) AS "firstSessionAt", session_count AS "sessionCount",
           array_to_json(merged_from) AS "mergedFromVisitorNumbers"
    FROM exported_visitors()
) TO STDOUT WITH (FORMAT csv, HEADER)
