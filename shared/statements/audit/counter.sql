-- audit: the uploads rows of one number and latest upload, read after uploads/lock_visitor.sql: no
-- storage trigger is then between its Firestore write and its commit for this number.
SELECT count(*) AS rows, max(uploaded_at) AS last_upload_at FROM uploads WHERE visitor_number = :number
