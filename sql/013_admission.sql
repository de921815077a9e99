-- Admission (SPEC §14.1-14.2): a new participant is admitted against the experiment's
-- participants and their places, counted from its assignments while the experiment's row is held
-- (shared/statements/admission/places.sql). The unique indexes of sql/012 are partial (platform
-- participants, users, guests), so none serves "every assignment of one experiment": this one does,
-- and carries the condition, so that the count reads the index and then each one's sessions.
CREATE INDEX assignments_experiment_idx ON assignments (experiment_id, condition);
