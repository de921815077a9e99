"""Apply the SQL migrations in sql/, in order, each exactly once.

    python -m shared.migrate            # uses DATABASE_URL or the Cloud SQL settings
    python -m shared.migrate --functions-user NAME   # and let NAME act as the functions
    python -m shared.migrate --erasure-user NAME     # and let NAME erase visitors (SPEC §11)

Every setting is checked first (shared.config.check): with any problem, each is
printed on its own line and nothing runs (exit code 2).

Every file runs in its own transaction and is recorded in schema_migrations.
A PostgreSQL advisory lock makes concurrent runners (several instances
starting at once) wait for each other instead of applying a file twice.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import sqlalchemy
from sqlalchemy.engine import Engine

from shared.db import statement
from shared.logs import get_logger

log = get_logger("migrate")

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
# Any constant shared by all runners; "visitors" in ASCII.
_LOCK_KEY = 0x76697369746F7273
# The NOLOGIN group role of sql/002_roles.sql: what the functions may do.
FUNCTIONS_ROLE = "visitor_functions"
# The NOLOGIN group role of sql/003_erasure.sql: the functions' rights, and erasing.
ERASURE_ROLE = "visitor_erasure"


def migration_files(directory: Path = SQL_DIR) -> list[Path]:
    return sorted(p for p in directory.glob("*.sql") if p.name[:3].isdigit())


def apply_migrations(engine: Engine, directory: Path = SQL_DIR) -> list[str]:
    """Apply what is not applied yet; return the names applied by this call."""
    applied_now: list[str] = []
    with engine.connect() as conn:
        # Session-level lock, held across the per-file transactions below.
        conn.execute(statement("migrate_lock"), {"key": _LOCK_KEY})
        conn.commit()
        try:
            with conn.begin():
                conn.execute(statement("migrate_create_ledger"))
            with conn.begin():
                done = dict(conn.execute(statement("migrate_applied")).all())
            for path in migration_files(directory):
                body = path.read_text(encoding="utf-8")
                checksum = hashlib.sha256(body.encode()).hexdigest()
                if path.name in done:
                    if done[path.name] != checksum:
                        log.warning("migration %s changed after it was applied; not applied again", path.name)
                    continue
                with conn.begin():
                    conn.exec_driver_sql(body)
                    conn.execute(statement("migrate_record"), {"version": path.name, "checksum": checksum})
                log.info("applied migration %s", path.name)
                applied_now.append(path.name)
        finally:
            conn.execute(statement("migrate_unlock"), {"key": _LOCK_KEY})
            conn.commit()
    return applied_now


def grant_functions_role(engine: Engine, user: str, role: str = FUNCTIONS_ROLE) -> None:
    """Make the login user `user` a member of visitor_functions, or of `role`
    (ERASURE_ROLE); harmless if it is one."""
    # The one statement not in shared/statements/: GRANT takes no parameters, so the
    # user's name is written into it, quoted as an identifier by SQLAlchemy.
    assert role in (FUNCTIONS_ROLE, ERASURE_ROLE)
    quoted = engine.dialect.identifier_preparer.quote_identifier(user)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"GRANT {role} TO {quoted}")


def main(argv: list[str] | None = None) -> int:
    from shared.config import ConfigError, check
    from shared.db import get_engine

    parser = argparse.ArgumentParser(prog="python -m shared.migrate", description=__doc__.splitlines()[0])
    parser.add_argument("--functions-user", metavar="NAME", action="append", default=[],
                        help=f"a database user of the functions, to make a member of {FUNCTIONS_ROLE} (repeatable)")
    parser.add_argument("--erasure-user", metavar="NAME", action="append", default=[],
                        help=f"the database user of delete_my_data, erase_visitor and `shared.erasure`, "
                             f"to make a member of {ERASURE_ROLE} (repeatable)")
    args = parser.parse_args(argv)
    # Every setting, not only the database's: all that is wrong, before anything changes.
    problems = check()
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 2
    try:
        applied = apply_migrations(get_engine())
        for user in args.functions_user:
            grant_functions_role(get_engine(), user)
        for user in args.erasure_user:
            grant_functions_role(get_engine(), user, ERASURE_ROLE)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 2
    except sqlalchemy.exc.SQLAlchemyError as error:
        print(f"migration failed: {getattr(error, 'orig', error)}", file=sys.stderr)
        return 1
    print(f"migrations: {len(applied)} applied" + (f" ({', '.join(applied)})" if applied else ", schema up to date"))
    for user in args.functions_user:
        print(f"{user} is a member of {FUNCTIONS_ROLE}")
    for user in args.erasure_user:
        print(f"{user} is a member of {ERASURE_ROLE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
