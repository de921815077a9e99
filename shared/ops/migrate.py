"""Apply the SQL migrations in sql/, in order, each exactly once
(`python -m shared.migrate [--functions-user NAME] [--erasure-user NAME]`; docs/design/database.md)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from sqlalchemy.engine import Engine

from shared.core.db import statement
from shared.core.logs import get_logger

log = get_logger("migrate")

SQL_DIR = Path(__file__).resolve().parents[2] / "sql"
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
        conn.execute(statement("migrate/lock"), {"key": _LOCK_KEY})
        conn.commit()
        try:
            with conn.begin():
                conn.execute(statement("migrate/create_ledger"))
            with conn.begin():
                done: dict[str, str] = {row[0]: row[1] for row in conn.execute(statement("migrate/applied"))}
            for path in migration_files(directory):
                body = path.read_text(encoding="utf-8")
                checksum = hashlib.sha256(body.encode()).hexdigest()
                if path.name in done:
                    if done[path.name] != checksum:
                        log.warning("migration %s changed after it was applied; not applied again", path.name)
                    continue
                with conn.begin():
                    conn.exec_driver_sql(body)
                    conn.execute(statement("migrate/record"), {"version": path.name, "checksum": checksum})
                log.info("applied migration %s", path.name)
                applied_now.append(path.name)
        finally:
            conn.execute(statement("migrate/unlock"), {"key": _LOCK_KEY})
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
