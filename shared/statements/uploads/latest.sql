-- on_upload_finalized: the visitor's latest upload time, for visitors/{n}.lastUploadAt, read
-- after uploads/lock_visitor.sql in the same transaction (its own snapshot: it sees the rows
-- of the upload it waited for, and its own).
SELECT max(uploaded_at) FROM uploads WHERE visitor_number = :visitor_number
