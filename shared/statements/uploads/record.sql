-- on_upload_finalized: the upload's row, in the transaction that holds its session FOR SHARE
-- (uploads/session.sql), at most once per uploadId: a redelivery inserts nothing and returns
-- no row. Its visitor_number is the session's, and follows merges as the session's does
-- (registration/renumber_uploads.sql).
INSERT INTO uploads (id, session_id, visitor_number, bucket, name, generation, content_type, size, uploaded_at)
VALUES (:id, CAST(:session_id AS uuid), :visitor_number, :bucket, :name, :generation, :content_type, :size,
        :uploaded_at)
ON CONFLICT (id) DO NOTHING
RETURNING id
