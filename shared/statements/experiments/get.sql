-- One experiment's configuration, codes included (configure_experiment's GET, `show`).
SELECT config, updated_at
FROM experiments
WHERE id = :id
