-- audit: the uploads rows of the bucket after the given name and generation, in the order of the
-- listing (names byte by byte: COLLATE "C"), with the experiment of their session; one keyset page
-- (the index of sql/011_uploads_audit.sql).
SELECT up.id, up.session_id, up.visitor_number, up.name, up.generation, up.content_type, up.size,
       up.uploaded_at, up.recorded_at, s.experiment_id,
       up.recorded_at >= now() - CAST(:min_age AS integer) * interval '1 second' AS young
FROM uploads up JOIN sessions s ON s.id = up.session_id
WHERE up.bucket = :bucket
  AND (up.name COLLATE "C", up.generation) > (CAST(:name AS text) COLLATE "C", CAST(:generation AS bigint))
ORDER BY up.bucket, up.name COLLATE "C", up.generation
LIMIT :limit
