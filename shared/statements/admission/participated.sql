-- admission: whether the participation ledger holds one of the participant's keyed hashes for the
-- experiment (a completed session, SPEC §14.3; shared/studies/participants.py).
SELECT EXISTS (
    SELECT 1 FROM participation_ledger
    WHERE experiment_id = :experiment_id AND participant_hash = ANY (CAST(:hashes AS bytea[]))
) AS participated
