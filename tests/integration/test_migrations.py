"""Migrations against a real PostgreSQL: each file once, also with several runners at once."""

import threading
import uuid

import pytest
from sqlalchemy import text

from shared.core.db import plain_engine
from shared.ops.migrate import apply_migrations, migration_files


@pytest.fixture
def fresh_database(stack, engine):
    name = f"migrations_{uuid.uuid4().hex[:10]}"
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = stack.postgres.url_for(name)
    yield url
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))


def schema_of(engine) -> list:
    with engine.connect() as conn:
        return conn.execute(
            text(
                "SELECT table_name, column_name, data_type, is_nullable, column_default "
                "FROM information_schema.columns WHERE table_schema = 'public' "
                "UNION ALL SELECT indexname, indexdef, 'index', '', '' FROM pg_indexes WHERE schemaname = 'public' "
                "ORDER BY 1, 2"
            )
        ).all()


def test_applying_twice_changes_nothing(fresh_database):
    engine = plain_engine(fresh_database)
    try:
        first = apply_migrations(engine)
        schema = schema_of(engine)
        second = apply_migrations(engine)

        assert first == [path.name for path in migration_files()]
        assert second == []
        assert schema_of(engine) == schema
        with engine.connect() as conn:
            recorded = conn.execute(text("SELECT version FROM schema_migrations ORDER BY version")).scalars().all()
        assert recorded == first
    finally:
        engine.dispose()


def test_concurrent_runners_apply_each_file_once(fresh_database):
    runners = 4
    barrier = threading.Barrier(runners)
    applied: list[list[str]] = []
    errors: list[BaseException] = []
    engines = [plain_engine(fresh_database) for _ in range(runners)]

    def run(engine):
        barrier.wait()
        try:
            applied.append(apply_migrations(engine))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=(e,)) for e in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for engine in engines:
        engine.dispose()

    assert errors == []
    everything = sorted(name for names in applied for name in names)
    assert everything == [path.name for path in migration_files()]  # each file by exactly one runner


def test_schema_has_the_specified_objects(engine):
    with engine.connect() as conn:
        sequence = conn.execute(
            text(
                "SELECT data_type::text, start_value, increment_by, cache_size FROM pg_sequences "
                "WHERE sequencename = 'visitor_number_seq'"
            )
        ).one()
        assert tuple(sequence) == ("bigint", 1, 1, 1)
        foreign_keys = conn.execute(
            text(
                "SELECT tc.table_name, kcu.column_name, rc.delete_rule FROM information_schema.table_constraints tc "
                "JOIN information_schema.key_column_usage kcu USING (constraint_name) "
                "JOIN information_schema.referential_constraints rc USING (constraint_name) "
                "WHERE tc.constraint_type = 'FOREIGN KEY' ORDER BY 1, 2"
            )
        ).all()
        assert ("guests", "claimed_by", "SET NULL") in foreign_keys
        assert ("sessions", "user_id", "SET NULL") in foreign_keys
        assert ("responses", "session_id", "CASCADE") in foreign_keys
        indexes = {r.indexname for r in conn.execute(text("SELECT indexname FROM pg_indexes")).all()}
        # responses by session: 004_research.sql's index (level and time included) replaced 001's
        assert {
            "sessions_visitor_number_idx",
            "sessions_user_id_idx",
            "sessions_guest_id_idx",
            "responses_session_level_time_idx",
            "responses_visitor_number_idx",
            "sessions_experiment_created_idx",
        } <= indexes
        assert "responses_session_id_idx" not in indexes
        definition = conn.execute(
            text("SELECT indexdef FROM pg_indexes WHERE indexname = 'responses_session_level_time_idx'")
        ).scalar_one()
        assert definition.endswith("USING btree (session_id) INCLUDE (level, created_at)")
