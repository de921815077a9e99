-- get_visitor: a user's sessions (its own and those of the guests it claimed), newest first, each with
-- its condition (SPEC §14.2; NULL without one) and its recorded uploads (rows of `uploads`) in the
-- order the files were made.
SELECT s.id, s.experiment_id, s.created_at, s.condition,
       (SELECT count(*) FROM responses r WHERE r.session_id = s.id) AS response_count,
       (SELECT coalesce(json_agg(json_build_object('name', u.name, 'contentType', u.content_type, 'size', u.size,
                                                   'uploadedAt', utc_text(u.uploaded_at))
                                 ORDER BY u.uploaded_at, u.name, u.generation), '[]')
        FROM uploads u WHERE u.session_id = s.id) AS uploads
FROM sessions s
WHERE s.user_id = :user_id
ORDER BY s.created_at DESC, s.id
