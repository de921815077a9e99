-- The deliveries of erased sessions that were still pending when their session was erased (SPEC
-- §14.5: left until delivered or failed), now that they are: the submission id goes with them.
DELETE FROM completion_deliveries d
WHERE (d.delivered_at IS NOT NULL OR d.failed_at IS NOT NULL)
  AND EXISTS (SELECT 1 FROM erased_sessions e WHERE e.session_id = d.session_id)
