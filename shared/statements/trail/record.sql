-- One act of a researcher on the study's data (sql/007_researcher_actions.sql): who, what,
-- with which filters; `at` is the transaction's time.
INSERT INTO researcher_actions (uid, action, details)
VALUES (:uid, :action, CAST(:details AS jsonb))
RETURNING id, at
