-- The researchers' trail (SPEC §10): one row per act of a researcher on the study's data -
-- an export (export_data), an erasure by number (erase_visitor) - saying who (the Firebase
-- uid), what (the function), when, and with which filters (`details`, as the request gave
-- them). Written by the function before it streams (an export) or in the transaction that
-- deletes the rows (an erasure), read by get_researcher_actions (docs/researchers.md).
--
-- Nothing in it is a participant's data: an erase_visitor row names the erased visitor's
-- number, which the erasure ledger (erasures.visitor_number) keeps as well, for the same
-- reason - the record that the request was honoured. Erasure never deletes from it.
--
-- A new kind of act (configure_experiment) is a new `action` in the CHECK below, in a
-- later migration, and a call of shared.research.trail.record: nothing else changes.
CREATE TABLE researcher_actions (
    id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    uid     TEXT NOT NULL,
    action  TEXT NOT NULL CHECK (action IN ('export_data', 'erase_visitor')),
    details JSONB NOT NULL DEFAULT '{}'::jsonb,
    at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- Read newest first by id (its primary key's index): the identity hands ids out in the order
-- the rows are written.

-- Append-only for every function: visitor_functions (and so visitor_erasure, its member)
-- may add and read rows, never change or remove one. An identity column needs no grant on
-- its sequence for INSERT.
GRANT SELECT, INSERT ON researcher_actions TO visitor_functions;
