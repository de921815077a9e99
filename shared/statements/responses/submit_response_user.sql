-- submit_response by a registered user, either form (a single response is a batch of one):
-- lock the session, check that the user owns it (a user owns the sessions that carry its id:
-- its own and those of the guests it claimed) and that it is open, insert the items, and say
-- what happened:
--   missing   - no such session (one row);
--   denied    - the session is not the caller's (one row);
--   claimed   - the caller is an anonymous account that a signed-in account has claimed
--               (SPEC §13): its sessions are the claimer's now (one row);
--   completed - the session is completed and an item is new (one row; nothing stored);
--   otherwise one row per item, at its position (1, 2, ...): created - stored now; exists - a
--   response with this id was there before (a retry, or another session's id: the caller
--   compares session ids; nothing is stored when one is another session's).
-- The items are a JSON array of {"responseId", "level", "data"}, their ids distinct. An id that a
-- request still open is inserting makes the INSERT fail (unique violation) once that request
-- commits, and with it the whole statement: running it again finds that response.
--
-- FOR SHARE on the session: register (and the backfill) update the session row before they
-- renumber its responses in a later statement, and complete_session locks it FOR UPDATE before
-- it counts the responses and sets completed_at. A response is thus either inserted before
-- the claim or the completion (renumbered or counted by it), or it waits, and the owner, the
-- number and completed_at are judged on the locked (newest) version of the row.
--
-- The order of a session's responses (SPEC §14.6): createdAt strictly increases in the order
-- they were stored, a batch's items in list order. FOR SHARE lets two writers of one session
-- through at once, so `latest` (sql/015_response_order.sql) makes them go one at a time, until
-- each commits, and gives the session's latest createdAt as committed by the writer before. The
-- new items are stored at greatest(now(), that latest) + their position in microseconds: after
-- every response stored before them, whatever the clock did and however long the lock was waited
-- for (now() is when the statement began), and close to the real time (a microsecond per item
-- runs ahead of the clock only past a million responses a second to one session). Retries and
-- refusals take no lock.
WITH target AS (
    SELECT id, visitor_number, user_id, completed_at
    FROM sessions WHERE id = CAST(:session_id AS uuid)
    FOR SHARE
), claimed AS (
    SELECT 1 FROM users WHERE id = :user_id AND claimed_by IS NOT NULL
), owned AS (
    SELECT id, visitor_number, completed_at FROM target
    WHERE user_id = :user_id AND NOT EXISTS (SELECT 1 FROM claimed)
), items AS (
    SELECT CAST(item ->> 'responseId' AS uuid) AS id, CAST(item ->> 'level' AS integer) AS level,
           item -> 'data' AS data, position
    FROM jsonb_array_elements(CAST(:items AS jsonb)) WITH ORDINALITY AS i (item, position)
), stored AS (
    SELECT i.position, r.id, r.session_id, r.visitor_number, r.level, r.created_at
    FROM items i JOIN responses r ON r.id = i.id
    WHERE EXISTS (SELECT 1 FROM owned)
), new AS (
    SELECT * FROM items i WHERE NOT EXISTS (SELECT 1 FROM stored s WHERE s.id = i.id)
), writable AS (
    SELECT o.* FROM owned o
    WHERE o.completed_at IS NULL AND EXISTS (SELECT 1 FROM new)
      AND NOT EXISTS (SELECT 1 FROM stored s WHERE s.session_id <> o.id)
), latest AS MATERIALIZED (
    SELECT lock_response_order(id) AS created_at FROM writable
), inserted AS (
    INSERT INTO responses (id, session_id, visitor_number, level, data, created_at)
    SELECT n.id, w.id, w.visitor_number, n.level, n.data,
           greatest(now(), l.created_at) + n.position * interval '1 microsecond'
    FROM new n CROSS JOIN writable w CROSS JOIN latest l
    RETURNING id, session_id, visitor_number, level, created_at
)
SELECT 'created' AS outcome, n.position, r.id, r.session_id, r.visitor_number, r.level, r.created_at
FROM inserted r JOIN new n ON n.id = r.id
UNION ALL
SELECT 'exists', position, id, session_id, visitor_number, level, created_at FROM stored
UNION ALL
SELECT 'completed', NULL, NULL, NULL, NULL, NULL, NULL FROM owned
WHERE completed_at IS NOT NULL AND EXISTS (SELECT 1 FROM new)
UNION ALL
SELECT 'denied', NULL, NULL, NULL, NULL, NULL, NULL FROM target
WHERE NOT EXISTS (SELECT 1 FROM owned) AND NOT EXISTS (SELECT 1 FROM claimed)
UNION ALL
SELECT 'missing', NULL, NULL, NULL, NULL, NULL, NULL
WHERE NOT EXISTS (SELECT 1 FROM target) AND NOT EXISTS (SELECT 1 FROM claimed)
UNION ALL
SELECT 'claimed', NULL, NULL, NULL, NULL, NULL, NULL FROM claimed
