-- db.read_only_snapshot: the transaction reads one snapshot (taken by its first query) and writes nothing.
SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY
