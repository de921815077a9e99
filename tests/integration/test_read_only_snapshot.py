"""shared.core.db.read_only_snapshot against the session's PostgreSQL: every statement in it
sees one snapshot, none may write, rows stream through a server-side cursor, and the
connection goes back to the pool as it came."""

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from shared.core.db import plain_engine, read_only_snapshot, sqlstate


@pytest.fixture
def one_connection(stack, db):
    """An engine with a single pooled connection, so the next checkout is the same one."""
    engine = plain_engine(stack.database_url, pool_size=1, max_overflow=0)
    yield engine
    engine.dispose()


def add_user(db, uid: str) -> None:
    with db.begin() as conn:
        conn.execute(text("INSERT INTO users (id) VALUES (:id)"), {"id": uid})


def test_every_statement_sees_the_snapshot_of_the_first(one_connection, db):
    add_user(db, "before")
    with read_only_snapshot(one_connection) as conn:
        first = conn.execute(text("SELECT array_agg(id ORDER BY id) FROM users")).scalar()
        add_user(db, "meanwhile")  # committed by another connection
        again = conn.execute(text("SELECT array_agg(id ORDER BY id) FROM users")).scalar()
        level = conn.execute(text("SHOW transaction_isolation")).scalar()
    assert first == again == ["before"]
    assert level == "repeatable read"
    with one_connection.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM users")).scalar() == 2


def test_nothing_can_be_written_in_it(one_connection, db):
    with pytest.raises(DBAPIError) as refused:
        with read_only_snapshot(one_connection) as conn:
            conn.execute(text("INSERT INTO users (id) VALUES ('writer')"))
    assert sqlstate(refused.value) == "25006"  # read_only_sql_transaction
    with one_connection.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM users")).scalar() == 0


def test_rows_stream_through_a_server_side_cursor(one_connection, db):
    with read_only_snapshot(one_connection) as conn:
        result = conn.execute(text("SELECT g FROM generate_series(1, 250) g"), execution_options={"yield_per": 100})
        first = result.fetchmany(1)
        cursors = conn.execute(text("SELECT count(*) FROM pg_cursors WHERE NOT is_holdable")).scalar()
        rest = [row.g for row in result]
    assert first[0].g == 1 and rest == list(range(2, 251))
    assert cursors == 1


def test_the_connection_goes_back_to_the_pool_as_it_came(one_connection, db):
    with read_only_snapshot(one_connection) as conn:
        conn.execute(text("SELECT 1"))
    with one_connection.connect() as conn:
        settings = conn.execute(
            text("SELECT current_setting('transaction_isolation'), current_setting('transaction_read_only')")
        ).one()
        conn.execute(text("INSERT INTO users (id) VALUES ('after')"))
        conn.commit()
    assert tuple(settings) == ("read committed", "off")
