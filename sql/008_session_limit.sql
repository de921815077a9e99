-- The per-visitor session limit (SPEC §12): at most SESSION_LIMIT_PER_HOUR new sessions per
-- visitor per rolling hour, counted by create_session's own statement.
--
-- Each visitor's row (a guest's, a user's) keeps the creation times of its sessions in the
-- rolling hour, oldest first, at most the limit of them - as guest_limits does per address
-- (sql/006_guest_limits.sql, whose guest_limit_window() trims it). The count is kept here,
-- not counted from `sessions`, because it must be exact under concurrency within one
-- statement: under READ COMMITTED a statement sees the rows committed before it started,
-- even after it waited for a lock, except in the rows it locks or updates, which it reads
-- in their newest version. create_session locks the visitor's row FOR NO KEY UPDATE and
-- appends to this column, so concurrent sessions of one visitor are counted one after the
-- other (docs/design/session-limit.md). The times go with the row when it is erased.
--
-- ADD COLUMN with a constant default rewrites no row (PostgreSQL 11+).
ALTER TABLE guests ADD COLUMN session_times TIMESTAMPTZ[] NOT NULL DEFAULT '{}';
ALTER TABLE users ADD COLUMN session_times TIMESTAMPTZ[] NOT NULL DEFAULT '{}';
