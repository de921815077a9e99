-- Whether any session (test runs included) was started in the experiment: its platform is fixed then.
SELECT EXISTS (SELECT 1 FROM sessions WHERE experiment_id = :id) AS has_sessions
