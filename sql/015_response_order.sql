-- The order of a session's responses (SPEC §14.6): their createdAt strictly increase in the order
-- they were stored. submit_response (either form, shared/statements/responses/) calls this before
-- it inserts a session's new responses and stores them after the time it returns.
--
-- It takes a transaction lock on the session (the two-key form; 1734568 is the key space of
-- sessions' responses, uploads/lock_visitor.sql's is 1734567; hashtext may collide, which only
-- serialises two sessions' writers), so that writers of one session go one at a time until they
-- commit: submit_response's FOR SHARE on the session lets them through together. Then it returns
-- the session's latest createdAt as committed now (session_counts.last_response_at, kept by the
-- counters' triggers): a statement of this VOLATILE function takes its own snapshot after the
-- wait, and so sees the responses of the writer it waited for, which the calling statement's
-- snapshot, taken before, would miss. NULL for a session without responses.
CREATE FUNCTION lock_response_order(session UUID) RETURNS TIMESTAMPTZ
LANGUAGE plpgsql VOLATILE SET search_path = public, pg_temp AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(1734568, hashtext(CAST(session AS text)));
    RETURN (SELECT last_response_at FROM session_counts WHERE session_id = session);
END
$$;
