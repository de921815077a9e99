-- export_data: visitors as JSON Lines (SPEC §10), the rows of exported_visitors()
-- (sql/004_research.sql). COPY's text format doubles every backslash, which
-- shared/research/export.py undoes. Read-only, in the export's snapshot.
COPY (
    SELECT row_to_json(line)
    FROM (SELECT visitor_number AS "visitorNumber", registered AS "registered",
                 utc_text(first_session_at) AS "firstSessionAt", session_count AS "sessionCount",
                 merged_from AS "mergedFromVisitorNumbers"
          FROM exported_visitors()) line
) TO STDOUT
