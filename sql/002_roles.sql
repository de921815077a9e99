-- Least privilege: the group role that the functions' database user is a member of.
--
-- visitor_functions can read and write the rows the functions need, take numbers
-- from visitor_number_seq, and nothing else: no DELETE, no TRUNCATE, no DDL (it
-- owns no table; PostgreSQL 15+ gives PUBLIC no CREATE on schema public). It is
-- NOLOGIN: a login user joins it once, as the migrating user:
--     GRANT visitor_functions TO "visitors-functions";        -- a password user
--     GRANT visitor_functions TO "sa-name@project.iam";       -- an IAM database user
-- (`python -m shared.migrate --functions-user NAME` does this; see README, Deployment.)
--
-- Works without superuser (Cloud SQL's postgres user has CREATEROLE). The role is
-- cluster-wide while this file runs once per database: an existing role is kept,
-- and two databases migrated at the same moment do not fail on the race.
-- Every later migration that adds a table or sequence grants on it as needed.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'visitor_functions') THEN
        CREATE ROLE visitor_functions NOLOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;  -- created by a concurrent migration of another database
END
$$;

-- SELECT ... FOR SHARE / FOR UPDATE (the functions lock visitor and session rows)
-- needs UPDATE; INSERT ... ON CONFLICT DO UPDATE needs INSERT and UPDATE.
GRANT SELECT, INSERT, UPDATE ON users, guests, sessions, responses, visitor_merges TO visitor_functions;

-- nextval() needs USAGE; nothing reads or sets the sequence directly.
GRANT USAGE ON SEQUENCE visitor_number_seq TO visitor_functions;
