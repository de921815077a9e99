-- complete_session: the participant took part in this experiment (SPEC §14.3, already_participated),
-- as a keyed hash; never erased. A second completed session of the same participant adds nothing.
INSERT INTO participation_ledger (experiment_id, participant_hash)
VALUES (:experiment_id, :participant_hash)
ON CONFLICT (experiment_id, participant_hash) DO NOTHING
