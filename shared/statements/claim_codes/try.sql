-- register with a claim code, before the code is looked at (its own statement, committed
-- at once, so that it counts even when the register rolls back): one more try of the
-- account against its limit (the parameters limit and window_seconds: 5 wrong codes in
-- 10 minutes). The try is recorded (its time returned as tried_at) only while fewer
-- than the limit are recent;
-- a right code then takes its own try back (register_claim_code_forgive.sql), so only
-- wrong ones stay. At the limit nothing is recorded, tried_at is NULL and retry_after
-- says when the oldest recent try leaves the window. INSERT ... ON CONFLICT DO UPDATE
-- locks the account's row: tries sent at once are counted one after the other, on
-- any number of instances.
WITH recent AS (
    SELECT t FROM claim_code_attempts, unnest(failed_at) AS t
    WHERE user_id = :user_id AND t > now() - CAST(:window_seconds AS integer) * interval '1 second'
), counted AS (
    INSERT INTO claim_code_attempts AS a (user_id, failed_at) VALUES (:user_id, ARRAY[now()])
    ON CONFLICT (user_id) DO UPDATE
    SET failed_at = ARRAY(SELECT t FROM unnest(a.failed_at) AS t
                          WHERE t > now() - CAST(:window_seconds AS integer) * interval '1 second'
                          ORDER BY t) || now()
    WHERE (SELECT count(*) FROM unnest(a.failed_at) AS t
           WHERE t > now() - CAST(:window_seconds AS integer) * interval '1 second') < CAST(:limit AS integer)
    RETURNING now() AS tried_at
)
SELECT (SELECT tried_at FROM counted) AS tried_at,
       (SELECT CAST(ceil(extract(epoch FROM min(t) + CAST(:window_seconds AS integer) * interval '1 second'
                                 - now())) AS integer)
        FROM recent) AS retry_after
