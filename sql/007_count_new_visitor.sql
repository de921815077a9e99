-- The guest-creation limit's count (SPEC §12; sql/006_guest_limits.sql) as one function,
-- called by create_session's four statements (shared/statements/create_session_*.sql),
-- which each held the same three CTEs until now.
--
-- count_new_visitor counts one new visitor against the address whose HMAC is `address`,
-- at most `guest_limit` of them in the rolling hour: INSERT ... ON CONFLICT DO UPDATE
-- locks the address's row and reads its newest version, so first sessions from one
-- address are counted one after the other on any number of instances. `allowed`: the
-- visitor was counted and may take a number; if not, nothing was added to the window and
-- `retry_after` is the seconds until the address's oldest new guest leaves the hour.
-- Each call also forgets two other addresses whose window is over (run_maintenance
-- forgets the rest).
--
-- A statement calls it only for a new visitor with the limit on, behind a one-time
-- filter; anything else (a returning visitor, a retry, the limit off) never runs it, and
-- the statement's plan no longer carries the count's INSERT and DELETE, which cost
-- every call of the statement their executor setup (bench/README.md, database section).
-- plpgsql, not sql: PostgreSQL keeps a plpgsql function's plans for the session, and
-- plans an sql function's body again on every call of the statement (measured: 0.2 ms
-- more per counted visitor). VOLATILE: it writes. SECURITY INVOKER (the default): it
-- changes guest_limits with the caller's own rights.
CREATE FUNCTION count_new_visitor(address BYTEA, guest_limit INTEGER,
                                  OUT allowed BOOLEAN, OUT retry_after INTEGER)
    LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    oldest TIMESTAMPTZ;
BEGIN
    INSERT INTO guest_limits AS g (address_hash, created_at, last_at)
    VALUES (address, ARRAY[now()], now())
    ON CONFLICT (address_hash) DO UPDATE
    SET (allowed, created_at, last_at) = (
        SELECT w.allowed, CASE WHEN w.allowed THEN w.times || now() ELSE w.times END,
               CASE WHEN w.allowed THEN now() ELSE g.last_at END
        FROM (SELECT times, cardinality(times) < guest_limit AS allowed
              FROM guest_limit_window(g.created_at, now() - interval '1 hour') AS times) AS w)
    RETURNING g.allowed, g.created_at[1] INTO allowed, oldest;
    DELETE FROM guest_limits WHERE address_hash IN (
        SELECT e.address_hash FROM guest_limits AS e
        WHERE e.last_at < now() - interval '1 hour' AND e.address_hash <> address
        ORDER BY e.last_at LIMIT 2 FOR UPDATE SKIP LOCKED);
    IF NOT allowed THEN
        retry_after := CAST(ceil(extract(epoch FROM oldest + interval '1 hour' - now())) AS INTEGER);
    END IF;
END
$$;

-- Only the functions (and the erasure role, a member of visitor_functions) count visitors.
REVOKE EXECUTE ON FUNCTION count_new_visitor(BYTEA, INTEGER) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION count_new_visitor(BYTEA, INTEGER) TO visitor_functions;
