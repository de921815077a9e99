-- export_data: participants.csv, in the zip with participantIds=true only (SPEC §14.7): the
-- platform ids each exported session was started with (session_participants), personal data the
-- researcher asked for. Streamed by COPY; read-only, in the export's snapshot; session by session
-- as sessions.csv.
COPY (
    SELECT p.session_id AS "sessionId", p.platform AS "platform", csv_text(p.participant_id) AS "participantId",
           csv_text(p.study_id) AS "studyId", csv_text(p.submission_id) AS "submissionId",
           csv_text(p.assignment_id) AS "assignmentId", csv_text(p.hit_id) AS "hitId"
    FROM exported_sessions() s
    JOIN session_participants p ON p.session_id = s.id
    ORDER BY s.created_at, s.id
) TO STDOUT WITH (FORMAT csv, HEADER)
