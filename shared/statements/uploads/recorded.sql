-- on_upload_finalized: whether an upload has its row (an object let in by an earlier delivery).
SELECT 1 FROM uploads WHERE id = :id
