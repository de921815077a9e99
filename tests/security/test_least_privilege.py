"""Least privilege: the functions run as a member of visitor_functions (sql/002_roles.sql),
which may do everything the API needs and nothing more (no DELETE, TRUNCATE or DDL); the
erasing functions as a member of visitor_erasure (sql/003_erasure.sql), which may also
delete a visitor's rows and write the erasure ledger, but never delete from the ledger."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest
import sqlalchemy
from sqlalchemy import text

from devtools.clients import StorageEvents
from devtools.ports import free_port
from devtools.postgres import LocalPostgres
from devtools.stack import ROOT, FunctionsServer
from shared.core.db import plain_engine, sqlstate
from shared.ops.migrate import ERASURE_ROLE, FUNCTIONS_ROLE, apply_migrations, grant_functions_role, migration_files
from tests.support import Api, new_guest_key, rows, scalar
from tests.uploads_support import UploadsWorld

TABLES = ("users", "guests", "sessions", "responses", "visitor_merges")
CLAIM_TABLES = ("claim_codes", "claim_code_attempts")  # sql/005_claims.sql
UPLOAD_TABLES = ("uploads",)  # sql/009_uploads.sql: recorded and renumbered by the functions, deleted with erasures
# sql/012_studies.sql: configured, assigned, started and delivered by the functions, deleted with erasures
STUDY_TABLES = ("experiments", "assignments", "session_participants", "completion_deliveries")
INSUFFICIENT_PRIVILEGE = "42501"


def url_as(url: str, user: str) -> str:
    return (
        sqlalchemy.make_url(url)
        .set(username=user, password="not-checked-locally")
        .render_as_string(hide_password=False)
    )


@pytest.fixture(scope="module")
def functions_user(stack, engine):
    """A login user of the stack's database whose only rights come from visitor_functions."""
    user = f"visitors_fn_{uuid.uuid4().hex[:8]}"
    with engine.begin() as conn:
        conn.exec_driver_sql(f'CREATE ROLE "{user}" LOGIN')
    grant_functions_role(engine, user)
    grant_functions_role(engine, user)  # a second grant is harmless
    yield user
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = :u"), {"u": user})
        conn.exec_driver_sql(f'DROP ROLE "{user}"')


@pytest.fixture(scope="module")
def least_privileged_functions(stack, functions_user, tmp_path_factory):
    """Every function under gunicorn, connecting to PostgreSQL as functions_user."""
    env = {**stack.env(), "DATABASE_URL": url_as(stack.database_url, functions_user)}
    server = FunctionsServer(free_port(), env, tmp_path_factory.mktemp("least") / "functions.log").start()
    yield server
    server.stop()


@pytest.fixture
def functions_as_member(least_privileged_functions, db) -> Api:
    return Api(least_privileged_functions.url)


def test_the_role_is_nologin_and_has_exactly_the_needed_grants(db):
    assert scalar(db, "SELECT rolcanlogin FROM pg_roles WHERE rolname = :r", r=FUNCTIONS_ROLE) is False
    grants = {
        (r.table_name, r.privilege_type)
        for r in rows(
            db,
            "SELECT table_name, privilege_type FROM information_schema.role_table_grants WHERE grantee = :r",
            r=FUNCTIONS_ROLE,
        )
    }
    assert grants == {
        (table, privilege)
        for table in TABLES + CLAIM_TABLES + UPLOAD_TABLES + STUDY_TABLES
        for privilege in ("SELECT", "INSERT", "UPDATE")
    } | {("erased_sessions", "SELECT")} | {  # the tombstones create_session and on_upload_finalized read
        # The guest-creation windows (sql/006_guest_limits.sql): counted, and forgotten once over.
        ("guest_limits", privilege)
        for privilege in ("SELECT", "INSERT", "UPDATE", "DELETE")
    } | {  # the researchers' trail (sql/007_researcher_actions.sql): appended to and read, nothing more
        ("researcher_actions", "SELECT"),
        ("researcher_actions", "INSERT"),
    } | {  # the study counters (sql/010_study_counters.sql): read by get_study_stats, written by triggers only
        ("session_counts", "SELECT"),
        ("session_days", "SELECT"),
    } | {("session_owner_numbers", "SELECT")} | {  # the audit's view of each session's owner (sql/011)
        # who completed a study, as keyed hashes (sql/012): appended to and read, never erased
        ("participation_ledger", "SELECT"),
        ("participation_ledger", "INSERT"),
    }
    sequence = rows(
        db,
        "SELECT has_sequence_privilege(:r, 'visitor_number_seq', 'USAGE') AS usage, "
        "has_sequence_privilege(:r, 'visitor_number_seq', 'UPDATE') AS update",
        r=FUNCTIONS_ROLE,
    )[0]
    assert (sequence.usage, sequence.update) == (True, False)
    assert scalar(db, "SELECT has_table_privilege(:r, 'schema_migrations', 'SELECT')", r=FUNCTIONS_ROLE) is False


def test_the_erasure_role_adds_deleting_rows_and_writing_the_ledger_only(db):
    assert scalar(db, "SELECT rolcanlogin FROM pg_roles WHERE rolname = :r", r=ERASURE_ROLE) is False
    assert scalar(db, "SELECT pg_has_role(:r, :f, 'MEMBER')", r=ERASURE_ROLE, f=FUNCTIONS_ROLE) is True
    grants = {
        (r.table_name, r.privilege_type)
        for r in rows(
            db,
            "SELECT table_name, privilege_type FROM information_schema.role_table_grants WHERE grantee = :r",
            r=ERASURE_ROLE,
        )
    }
    assert grants == {
        (table, "DELETE") for table in TABLES + CLAIM_TABLES + UPLOAD_TABLES + STUDY_TABLES if table != "experiments"
    } | {
        (table, privilege) for table in ("erasures", "erased_sessions") for privilege in ("SELECT", "INSERT", "UPDATE")
    }


@pytest.mark.parametrize(
    "statement",
    [
        "DELETE FROM erasures",
        "DELETE FROM erased_sessions",
        "TRUNCATE erasures CASCADE",
        "DELETE FROM schema_migrations",
        "DELETE FROM researcher_actions",
        "UPDATE researcher_actions SET uid = 'someone else'",
        "TRUNCATE researcher_actions",
    ],
)
def test_the_erasure_role_may_not_rewrite_the_ledger(stack, engine, db, statement):
    user = f"visitors_erase_{uuid.uuid4().hex[:8]}"
    with engine.begin() as conn:
        conn.exec_driver_sql(f'CREATE ROLE "{user}" LOGIN')
    grant_functions_role(engine, user, ERASURE_ROLE)
    member = plain_engine(url_as(stack.database_url, user), poolclass=sqlalchemy.pool.NullPool)
    try:
        with pytest.raises(sqlalchemy.exc.ProgrammingError) as refused, member.begin() as conn:
            conn.exec_driver_sql(statement)
        assert sqlstate(refused.value) == INSUFFICIENT_PRIVILEGE
    finally:
        member.dispose()
        with engine.begin() as conn:
            conn.exec_driver_sql(f'DROP ROLE "{user}"')


def test_the_whole_api_runs_as_a_member_of_the_role(
    functions_as_member, functions_user, db, auth_emulator, firestore, bucket
):
    api = functions_as_member
    key = new_guest_key()

    # A guest: a session (and its retry), a response (and its retry), its record.
    session = api.post("create_session", {"experimentId": "lp", "metadata": {"a": 1}}, guest=key)
    assert session.status_code == 201, session.text
    session = session.json()
    again = api.post("create_session", {"sessionId": session["sessionId"], "experimentId": "lp"}, guest=key)
    assert (again.status_code, again.json()) == (200, session)
    response_id = str(uuid.uuid4())
    submitted = api.post(
        "submit_response",
        {"sessionId": session["sessionId"], "responseId": response_id, "level": 2, "data": {"answer": "ja"}},
        guest=key,
    )
    assert submitted.status_code == 201, submitted.text
    retried = api.post(
        "submit_response",
        {"sessionId": session["sessionId"], "responseId": response_id, "level": 2, "data": {"answer": "ja"}},
        guest=key,
    )
    assert (retried.status_code, retried.json()) == (200, submitted.json())
    visitor = api.get("get_visitor", guest=key)
    assert visitor.status_code == 200 and visitor.json()["sessions"][0]["responseCount"] == 1

    # A user with a number of its own registers and claims the guest: a merge.
    user = auth_emulator.new_user()
    own = api.post("create_session", {}, token=user.id_token)
    assert own.status_code == 201, own.text
    registered = api.post("register", {"displayName": "Least"}, guest=key, token=user.id_token)
    assert registered.status_code == 200, registered.text
    assert registered.json()["migratedSessions"] == 1
    assert registered.json()["mergedFromVisitorNumber"] == session["visitorNumber"]
    assert api.post("create_session", {}, guest=key).json()["error"]["code"] == "guest_claimed"

    # An upload of the user's session, tagged and recorded by the storage trigger.
    world = UploadsWorld(api, db, firestore, bucket, StorageEvents(api.url("on_upload_finalized")))
    ticket = api.post(
        "create_upload_ticket", {"sessionId": own.json()["sessionId"], "name": "photo.png"}, token=user.id_token
    )
    assert ticket.status_code == 201, ticket.text
    item = world.upload(own.json()["sessionId"], "photo.png", ticket=ticket.json()["ticket"])
    assert world.deliver(item).status_code < 300
    assert world.stored(item["name"])["metadata"]["visitorNumber"] == str(own.json()["visitorNumber"])
    assert len(world.uploads()) == 1

    # The user's own data, read in one read-only snapshot through server-side cursors.
    exported = api.get("export_my_data", token=user.id_token)
    assert exported.status_code == 200, exported.text
    assert [len(s["uploads"]) for s in exported.json()["sessions"]] == [1, 0]

    # What was stored, and that it was the functions' user that stored it.
    assert scalar(db, "SELECT count(*) FROM pg_stat_activity WHERE usename = :u", u=functions_user) >= 1
    stored = rows(db, "SELECT id, user_id, visitor_number FROM sessions ORDER BY created_at")
    assert [(str(r.id), r.user_id, r.visitor_number) for r in stored] == [
        (session["sessionId"], user.uid, own.json()["visitorNumber"]),
        (own.json()["sessionId"], user.uid, own.json()["visitorNumber"]),
    ]
    assert rows(db, "SELECT from_number, to_number FROM visitor_merges") == [
        (session["visitorNumber"], own.json()["visitorNumber"])
    ]
    assert scalar(db, "SELECT count(*) FROM responses WHERE visitor_number = :n", n=own.json()["visitorNumber"]) == 1

    # An anonymous account claimed with X-Anonymous-Token, another through its claim code, and a wrong code.
    claimer, anonymous, coded = auth_emulator.new_user(), auth_emulator.anonymous(), auth_emulator.anonymous()
    for account in (anonymous, coded):
        assert api.post("create_session", {}, token=account.id_token).status_code == 201
    claimed = api.post("register", {}, token=claimer.id_token, headers={"X-Anonymous-Token": anonymous.id_token})
    assert claimed.status_code == 201 and claimed.json()["migratedSessions"] == 1, claimed.text
    code = api.post("create_claim_code", {}, token=coded.id_token)
    assert code.status_code == 201, code.text
    assert api.post("register", {"claimCode": "WRQNG234"}, token=claimer.id_token).status_code == 400
    redeemed = api.post("register", {"claimCode": code.json()["claimCode"]}, token=claimer.id_token)
    assert redeemed.status_code == 200 and redeemed.json()["migratedSessions"] == 1, redeemed.text
    assert api.post("create_session", {}, token=anonymous.id_token).json()["error"]["code"] == "guest_claimed"
    assert rows(db, "SELECT cardinality(failed_at) FROM claim_code_attempts") == [(1,)]


@pytest.mark.parametrize(
    "statement",
    [
        "DELETE FROM responses",
        "DELETE FROM guests",
        "TRUNCATE sessions CASCADE",
        "DROP TABLE visitor_merges",
        "ALTER TABLE users ADD COLUMN evil TEXT",
        "CREATE TABLE evil (id INT)",
        "CREATE INDEX evil_idx ON sessions (experiment_id)",
        "ALTER SEQUENCE visitor_number_seq RESTART WITH 1",
        "SELECT setval('visitor_number_seq', 1)",
        "SELECT * FROM schema_migrations",
        "DELETE FROM schema_migrations",
        "CREATE ROLE evil LOGIN",
        "GRANT visitor_functions TO postgres",
    ],
)
def test_the_role_may_not_delete_truncate_or_change_the_schema(stack, functions_user, db, statement):
    guest = new_guest_key()
    member = plain_engine(url_as(stack.database_url, functions_user), poolclass=sqlalchemy.pool.NullPool)
    try:
        with member.begin() as conn:  # what the role may do, so there is something to delete
            conn.execute(
                text(
                    "INSERT INTO guests (id, key_hash, visitor_number) "
                    "VALUES (gen_random_uuid(), sha256(convert_to(:k, 'UTF8')), nextval('visitor_number_seq'))"
                ),
                {"k": guest},
            )
        before = {table: scalar(db, f"SELECT count(*) FROM {table}") for table in TABLES}
        with pytest.raises(sqlalchemy.exc.ProgrammingError) as refused:
            with member.begin() as conn:
                conn.exec_driver_sql(statement)
    finally:
        member.dispose()
    assert sqlstate(refused.value) == INSUFFICIENT_PRIVILEGE, refused.value
    assert {table: scalar(db, f"SELECT count(*) FROM {table}") for table in TABLES} == before
    assert scalar(db, "SELECT count(*) FROM information_schema.columns WHERE column_name = 'evil'") == 0
    assert scalar(db, "SELECT to_regclass('evil')") is None


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE researcher_actions SET uid = 'someone else'",
        "UPDATE researcher_actions SET details = '{}'",
        "DELETE FROM researcher_actions",
        "TRUNCATE researcher_actions",
        "SELECT * FROM researcher_actions FOR UPDATE",
        "ALTER TABLE researcher_actions DISABLE TRIGGER ALL",
    ],
)
def test_the_role_may_append_to_the_researchers_trail_but_never_change_it(stack, functions_user, db, statement):
    """sql/007_researcher_actions.sql: the functions add acts and read them; no UPDATE, no DELETE."""
    member = plain_engine(url_as(stack.database_url, functions_user), poolclass=sqlalchemy.pool.NullPool)
    try:
        with member.begin() as conn:  # what the role may do: append, read
            conn.execute(
                text("INSERT INTO researcher_actions (uid, action, details) VALUES ('r', 'export_data', '{}')")
            )
            assert conn.execute(text("SELECT uid FROM researcher_actions")).scalars().all() == ["r"]
        with pytest.raises(sqlalchemy.exc.ProgrammingError) as refused:
            with member.begin() as conn:
                conn.exec_driver_sql(statement)
    finally:
        member.dispose()
    assert sqlstate(refused.value) == INSUFFICIENT_PRIVILEGE, refused.value
    assert rows(db, "SELECT uid, action, details FROM researcher_actions") == [("r", "export_data", {})]


def test_migrations_run_as_a_non_superuser_like_cloud_sqls_postgres_user(tmp_path):
    """On Cloud SQL the migrating user has CREATEROLE and CREATEDB but is not a superuser."""
    server = LocalPostgres(tmp_path / "cloudsql-like", free_port(), fast=True).start()
    admin = plain_engine(server.url, poolclass=sqlalchemy.pool.NullPool, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql("CREATE ROLE migrator LOGIN CREATEROLE CREATEDB NOSUPERUSER")
            conn.exec_driver_sql("CREATE DATABASE visitors OWNER migrator")
        migrator = plain_engine(url_as(server.url_for("visitors"), "migrator"), poolclass=sqlalchemy.pool.NullPool)
        try:
            assert scalar(migrator, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user") is False
            assert apply_migrations(migrator) == [path.name for path in migration_files()]
            assert apply_migrations(migrator) == []
            with migrator.begin() as conn:
                conn.exec_driver_sql('CREATE ROLE "fn@project.iam" LOGIN')
            grant_functions_role(migrator, "fn@project.iam")
        finally:
            migrator.dispose()

        member = plain_engine(url_as(server.url_for("visitors"), "fn@project.iam"), poolclass=sqlalchemy.pool.NullPool)
        try:
            with member.begin() as conn:
                number = conn.execute(text("SELECT nextval('visitor_number_seq')")).scalar()
                conn.execute(text("INSERT INTO users (id, visitor_number) VALUES ('u1', :n)"), {"n": number})
            with pytest.raises(sqlalchemy.exc.ProgrammingError) as refused, member.begin() as conn:
                conn.exec_driver_sql("DELETE FROM users")
            assert sqlstate(refused.value) == INSUFFICIENT_PRIVILEGE
            assert scalar(member, "SELECT id FROM users") == "u1"
        finally:
            member.dispose()
    finally:
        admin.dispose()
        server.destroy()


def test_migrate_command_makes_each_functions_user_a_member(stack, engine, db):
    users = [f"fn_{uuid.uuid4().hex[:8]}@project.iam", f"fn_{uuid.uuid4().hex[:8]}"]
    with engine.begin() as conn:
        for user in users:
            conn.exec_driver_sql(f'CREATE ROLE "{user}" LOGIN')
    try:
        result = subprocess.run(
            [sys.executable, "-m", "shared.migrate", *(f"--functions-user={user}" for user in users)],
            env={"PATH": os.environ["PATH"], "DATABASE_URL": stack.database_url},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        assert "schema up to date" in result.stdout
        for user in users:
            assert f"{user} is a member of {FUNCTIONS_ROLE}" in result.stdout
            assert scalar(db, "SELECT pg_has_role(:u, :r, 'MEMBER')", u=user, r=FUNCTIONS_ROLE) is True
    finally:
        with engine.begin() as conn:
            for user in users:
                conn.exec_driver_sql(f'DROP ROLE "{user}"')


@pytest.fixture(scope="module")
def erasure_user(stack, engine):
    """A login user whose only rights come from visitor_erasure."""
    user = f"visitors_erase_{uuid.uuid4().hex[:8]}"
    with engine.begin() as conn:
        conn.exec_driver_sql(f'CREATE ROLE "{user}" LOGIN')
    grant_functions_role(engine, user, ERASURE_ROLE)
    yield user
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = :u"), {"u": user})
        conn.exec_driver_sql(f'DROP ROLE "{user}"')


def test_withdrawal_runs_as_a_member_of_the_erasure_role(stack, erasure_user, db, firestore, bucket, tmp_path):
    env = {**stack.env(), "DATABASE_URL": url_as(stack.database_url, erasure_user)}
    server = FunctionsServer(free_port(), env, tmp_path / "functions.log").start()
    try:
        api = Api(server.url)
        key = new_guest_key()
        session = api.post("create_session", {}, guest=key).json()
        api.post("submit_response", {"sessionId": session["sessionId"], "data": 1}, guest=key)
        world = UploadsWorld(api, db, firestore, bucket, StorageEvents(api.url("on_upload_finalized")))
        world.owners[session["sessionId"]] = key  # its ticket from create_upload_ticket
        assert world.deliver(world.upload(session["sessionId"])).status_code < 300

        erased = api.post("delete_my_data", {}, guest=key)

        assert erased.status_code == 202, erased.text
        assert {k: v for k, v in erased.json().items() if k != "erasureId"} == {
            "status": "done",
            "sessions": 1,
            "responses": 1,
            "uploads": 1,
            "objects": 1,
        }
        assert scalar(db, "SELECT count(*) FROM pg_stat_activity WHERE usename = :u", u=erasure_user) >= 1
        assert scalar(db, "SELECT count(*) FROM sessions") == 0
        assert scalar(db, "SELECT count(*) FROM guests") == 0
    finally:
        server.stop()


def test_withdrawal_of_a_claimer_runs_as_a_member_of_the_erasure_role(
    stack, erasure_user, db, auth_emulator, firestore, bucket, tmp_path
):
    """A user that claimed an anonymous account and a guest through its code withdraws: the claimed
    accounts' rows, the codes and the count of wrong ones go too (sql/005_claims.sql's grants)."""
    env = {**stack.env(), "DATABASE_URL": url_as(stack.database_url, erasure_user)}
    server = FunctionsServer(free_port(), env, tmp_path / "functions.log").start()
    try:
        api = Api(server.url)
        user, anonymous, key = auth_emulator.new_user(), auth_emulator.anonymous(), new_guest_key()
        api.post("create_session", {}, token=anonymous.id_token)
        api.post("create_session", {}, guest=key)
        code = api.post("create_claim_code", {}, guest=key).json()["claimCode"]
        assert api.post("register", {"claimCode": "WRQNG234"}, token=user.id_token).status_code == 400
        assert api.post("register", {"claimCode": code}, token=user.id_token).status_code == 201
        assert (
            api.post("register", {}, token=user.id_token, headers={"X-Anonymous-Token": anonymous.id_token}).json()[
                "migratedSessions"
            ]
            == 1
        )

        erased = api.post("delete_my_data", {}, token=user.id_token)

        assert erased.status_code == 202, erased.text
        assert erased.json()["sessions"] == 2
        for table in ("users", "guests", "sessions", "claim_codes", "claim_code_attempts"):
            assert scalar(db, f"SELECT count(*) FROM {table}") == 0, table
    finally:
        server.stop()


def test_python_m_shared_maintenance_runs_as_a_member_of_the_erasure_role(stack, erasure_user, db, firestore, bucket):
    """The command does what run_maintenance does (SPEC §12), with no more rights than erasing has:
    an idle empty guest is erased through the ledger, an expired guest-creation window forgotten."""
    api = Api(stack.env()["FUNCTIONS_URL"])
    idle, active = new_guest_key(), new_guest_key()
    for key in (idle, active):
        assert api.post("create_session", {}, guest=key).status_code == 201
    with db.begin() as conn:
        conn.execute(
            text(
                "UPDATE sessions SET created_at = now() - interval '40 days' WHERE guest_id = "
                "(SELECT id FROM guests WHERE key_hash = sha256(convert_to(:k, 'UTF8')))"
            ),
            {"k": idle},
        )
        conn.execute(
            text(
                "UPDATE guests SET created_at = now() - interval '40 days' "
                "WHERE key_hash = sha256(convert_to(:k, 'UTF8'))"
            ),
            {"k": idle},
        )
        conn.execute(text("UPDATE guest_limits SET last_at = now() - interval '2 hours'"))
    env = {
        **stack.env(),
        "PATH": os.environ["PATH"],
        "GUEST_RETENTION_DAYS": "30",
        "DATABASE_URL": url_as(stack.database_url, erasure_user),
    }

    result = subprocess.run(
        [sys.executable, "-m", "shared.maintenance"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )

    assert result.returncode == 0, result.stderr
    # (The other lines on stdout are the log's JSON lines.)
    assert [line for line in result.stdout.splitlines() if line.startswith("maintenance:")] == [
        "maintenance: 0 pending erasure(s) completed, 0 still pending",
        "maintenance: retention (30 days) erased 1 guest(s), 0 with Firestore or Storage still pending, 0 kept",
        "maintenance: forgot 1 expired guest-creation window(s)",
    ]
    assert rows(db, "SELECT requested_by, sessions FROM erasures") == [("retention", 1)]
    assert scalar(db, "SELECT count(*) FROM guests") == 1
    assert scalar(db, "SELECT count(*) FROM guest_limits") == 0
    again = subprocess.run(
        [sys.executable, "-m", "shared.maintenance"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert again.returncode == 0 and "erased 0 guest(s)" in again.stdout
