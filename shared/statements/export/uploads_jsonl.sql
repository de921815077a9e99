-- export_data: uploads as JSON Lines (SPEC §10), the rows of uploads_csv.sql, one object per
-- line, streamed by COPY. COPY's text format doubles every backslash, which
-- shared/research/export.py undoes. Read-only, in the export's snapshot.
COPY (
    SELECT row_to_json(line)
    FROM (SELECT u.id AS "uploadId", u.session_id AS "sessionId", u.visitor_number AS "visitorNumber",
                 s.experiment_id AS "experimentId", u.name AS "name", u.content_type AS "contentType",
                 u.size AS "size", utc_text(u.uploaded_at) AS "uploadedAt",
                 'gs://' || u.bucket || '/' || u.name AS "gsUri"
          FROM exported_sessions() s
          JOIN uploads u ON u.session_id = s.id
          ORDER BY s.created_at, s.id, u.uploaded_at, u.name, u.generation) line
) TO STDOUT
