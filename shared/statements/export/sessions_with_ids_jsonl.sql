-- export_data: sessions as JSON Lines with participantIds=true (SPEC §14.7): sessions_jsonl.sql's
-- members and each session's platform participant id (null without one), streamed by COPY. COPY's
-- text format doubles every backslash, which shared/research/export.py undoes. Read-only, in the
-- export's snapshot; oldest first.
COPY (
    SELECT row_to_json(line)
    FROM (SELECT session_id AS "sessionId", visitor_number AS "visitorNumber", experiment_id AS "experimentId",
                 registered AS "registered", utc_text(created_at) AS "createdAt", response_count AS "responseCount",
                 max_level AS "maxLevel", upload_count AS "uploadCount", metadata AS "metadata",
                 condition AS "condition", status AS "status", outcome AS "outcome",
                 utc_text(completed_at) AS "completedAt", platform AS "platform", test AS "test",
                 participant_id AS "participantId"
          FROM exported_session_rows()
          ORDER BY created_at, session_id) line
) TO STDOUT
