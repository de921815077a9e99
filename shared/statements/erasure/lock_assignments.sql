-- erasure: the assignments (SPEC §14.2) of the sessions about to be erased, locked, so that no
-- create_session attaches a new session to one until the erasure commits. delete_assignments.sql
-- then deletes those left without a session.
SELECT a.id FROM assignments a
WHERE a.id IN (SELECT s.assignment_id FROM sessions s WHERE s.id = ANY(CAST(:session_ids AS uuid[])))
ORDER BY a.id
FOR UPDATE
