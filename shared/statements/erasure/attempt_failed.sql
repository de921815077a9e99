-- erasure: a try of its Firestore or Storage part failed; it stays pending for `resume`.
UPDATE erasures SET attempts = attempts + 1, last_attempt_at = now() WHERE id = CAST(:erasure_id AS uuid)
