-- run_maintenance: forget every client address whose guest-creation window is over
-- (its newest new guest is over an hour old; sql/006_guest_limits.sql). create_session
-- forgets two at a time; this clears what is left of addresses that never came back.
DELETE FROM guest_limits WHERE last_at < now() - CAST(:window_seconds AS integer) * interval '1 second'
