-- configure_experiment: the experiment's row, locked until the change commits, so that the
-- checks of a mid-study change (assignments, sessions) see what admission cannot change meanwhile.
SELECT config, updated_at
FROM experiments
WHERE id = :id
FOR UPDATE
