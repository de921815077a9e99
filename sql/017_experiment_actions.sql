-- The researchers' trail (sql/007_researcher_actions.sql) records two more acts: a configuration
-- set with configure_experiment, and a session excluded with exclude_session (docs/researchers.md).
-- Their details name the experiment (and the session), never a completion code.
ALTER TABLE researcher_actions
    DROP CONSTRAINT researcher_actions_action_check,
    ADD CONSTRAINT researcher_actions_action_check
        CHECK (action IN ('export_data', 'erase_visitor', 'configure_experiment', 'exclude_session'));
