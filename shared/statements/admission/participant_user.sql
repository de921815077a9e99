-- admission: a user as a participant (SPEC §14, Words: the owner after merges). Its assignment in
-- the experiment is its own, else that of a guest or an anonymous account it claimed (the oldest):
-- after a claim the user's own wins. Also the claimed guests' and accounts' ids, whose ledger
-- hashes count as the user's; whether a signed-in account claimed this one (an anonymous uid);
-- and, for a new participant or a test run when count_places, the experiment's participants and
-- places (experiment_places, sql/013).
-- A claimed guest keeps its id on the sessions that moved to the user (registration/move_sessions.sql).
WITH claimed_guests AS (
    SELECT DISTINCT guest_id AS id FROM sessions WHERE user_id = :user_id AND guest_id IS NOT NULL
), claimed_users AS (
    SELECT id FROM users WHERE claimed_by = :user_id
)
SELECT (SELECT claimed_by IS NOT NULL FROM users WHERE id = :user_id) AS claimed,
       ARRAY(SELECT CAST(id AS text) FROM claimed_guests ORDER BY id) AS guest_ids,
       ARRAY(SELECT id FROM claimed_users ORDER BY id) AS user_ids,
       a.id AS assignment_id, a.condition,
       CASE WHEN CAST(:count_places AS boolean) AND (a.id IS NULL OR CAST(:test AS boolean))
            THEN experiment_places(:experiment_id, CAST(:lease_minutes AS integer), CAST(:count_earlier AS boolean))
       END AS counted
FROM (SELECT 1) AS one
LEFT JOIN LATERAL (
    SELECT id, condition FROM assignments
    WHERE experiment_id = :experiment_id AND participant_id IS NULL
      AND (user_id = :user_id OR user_id IN (SELECT id FROM claimed_users) OR guest_id IN (SELECT id FROM claimed_guests))
    ORDER BY user_id IS NOT DISTINCT FROM :user_id DESC, created_at, id
    LIMIT 1
) AS a ON true
