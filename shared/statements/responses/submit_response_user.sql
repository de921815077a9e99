-- submit_response by a registered user: lock the session, check that the user
-- owns it (a user owns the sessions that carry its id: its own and those of the
-- guests it claimed), insert the response, and say what happened in exactly one row:
--   missing - no such session;
--   denied  - the session is not the caller's;
--   created - the response is new;
--   exists  - a response with this id was there before (a retry, or another
--             session's id; the caller compares session ids);
--   claimed - the caller is an anonymous account that a signed-in account has
--             claimed (SPEC §13): its sessions are the claimer's now.
-- No row at all: the same responseId was being inserted by a request that
-- committed after this statement began; running it again finds that response.
--
-- FOR SHARE on the session: register (and the backfill) update the session row
-- before they renumber its responses in a later statement. A response is thus
-- either inserted before the claim (and renumbered by it) or it waits, sees the
-- session's new owner and number, and is refused or numbered accordingly. The
-- owner is judged on the locked (newest) version of the row.
WITH target AS (
    SELECT id, visitor_number, user_id, guest_id
    FROM sessions WHERE id = CAST(:session_id AS uuid)
    FOR SHARE
), claimed AS (
    SELECT 1 FROM users WHERE id = :user_id AND claimed_by IS NOT NULL
), owned AS (
    SELECT id, visitor_number FROM target WHERE user_id = :user_id AND NOT EXISTS (SELECT 1 FROM claimed)
), inserted AS (
    INSERT INTO responses (id, session_id, visitor_number, level, data)
    SELECT CAST(:response_id AS uuid), id, visitor_number, CAST(:level AS integer), CAST(:data AS jsonb)
    FROM owned
    ON CONFLICT (id) DO NOTHING
    RETURNING id, session_id, visitor_number, level, created_at
)
SELECT 'created' AS outcome, id, session_id, visitor_number, level, created_at FROM inserted
UNION ALL
SELECT 'exists', r.id, r.session_id, r.visitor_number, r.level, r.created_at
FROM responses r
WHERE r.id = CAST(:response_id AS uuid) AND EXISTS (SELECT 1 FROM owned)
  AND NOT EXISTS (SELECT 1 FROM inserted)
UNION ALL
SELECT 'denied', NULL, NULL, NULL, NULL, NULL FROM target
WHERE NOT EXISTS (SELECT 1 FROM owned) AND NOT EXISTS (SELECT 1 FROM claimed)
UNION ALL
SELECT 'missing', NULL, NULL, NULL, NULL, NULL
WHERE NOT EXISTS (SELECT 1 FROM target) AND NOT EXISTS (SELECT 1 FROM claimed)
UNION ALL
SELECT 'claimed', NULL, NULL, NULL, NULL, NULL FROM claimed
