-- export_data: sessions.csv with participantIds=true (SPEC §14.7): sessions_csv.sql's columns and
-- each session's platform participant id (empty without one). Streamed by COPY; read-only, in the
-- export's snapshot; oldest first.
COPY (
    SELECT session_id AS "sessionId", visitor_number AS "visitorNumber", csv_text(experiment_id) AS "experimentId",
           registered::text AS "registered", utc_text(created_at) AS "createdAt", response_count AS "responseCount",
           max_level AS "maxLevel", upload_count AS "uploadCount", csv_text(metadata::text) AS "metadata",
           csv_text(condition) AS "condition", status AS "status", csv_text(outcome) AS "outcome",
           utc_text(completed_at) AS "completedAt", platform AS "platform", test::text AS "test",
           csv_text(participant_id) AS "participantId"
    FROM exported_session_rows()
    ORDER BY created_at, session_id
) TO STDOUT WITH (FORMAT csv, HEADER)
