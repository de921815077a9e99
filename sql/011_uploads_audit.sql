-- The audit (python -m shared.audit, SPEC §16) walks a bucket's uploads rows in the order the
-- bucket lists its objects, names compared byte by byte (COLLATE "C"), in keyset pages: this
-- index answers each page without sorting the table.
CREATE INDEX uploads_bucket_name_idx ON uploads (bucket, name COLLATE "C", generation);
