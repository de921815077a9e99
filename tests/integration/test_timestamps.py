"""timestamptz values as the product's engine reads them (shared.core.db.timestamptz_in, in place
of pg8000's strptime): the same datetime as pg8000's own reader for every value PostgreSQL
can write, through prepared statements and through SQLAlchemy alike."""

from datetime import UTC, datetime, timedelta

import pytest
from pg8000.converters import timestamptz_in as pg8000_timestamptz_in
from sqlalchemy import text

from shared.core.config import DatabaseSettings
from shared.core.db import make_engine, single_statement, timestamptz_in


@pytest.fixture
def engine(stack, monkeypatch):
    """The product's engine (make_engine), which registers the reader on every connection."""
    monkeypatch.setenv("DATABASE_URL", stack.database_url)
    engine = make_engine(DatabaseSettings.from_env())
    yield engine
    engine.dispose()


VALUES = [
    "2026-12-05 05:05:49.123456+00",
    "2026-12-05 05:05:49.1+00",
    "2026-12-05 05:05:49+00",
    "2026-12-05 23:59:59.999999+00",
    "1970-01-01 00:00:00+00",
    "0001-01-01 00:00:00+00",
    "2024-02-29 12:00:00.5+00",
]


def test_the_products_connections_read_timestamptz_with_fromisoformat(engine):
    with single_statement(engine) as conn:
        assert conn.connection.connection.dbapi_connection.pg_types[1184] is timestamptz_in


@pytest.mark.parametrize("value", VALUES)
def test_each_value_postgres_writes_is_read_as_pg8000_reads_it(engine, value):
    with single_statement(engine) as conn:
        (row,) = conn.rows(
            text("SELECT CAST(:v AS timestamptz) AS t, CAST(CAST(:v AS timestamptz) AS text) AS raw"), {"v": value}
        )
    assert row.t == pg8000_timestamptz_in(row.raw)
    assert row.t.tzinfo is not None and row.t.utcoffset() == timedelta(0)  # sessions run in UTC


@pytest.mark.parametrize("value", ["infinity", "-infinity", "0044-03-15 12:00:00+00 BC", "12026-01-01 00:00:00+00"])
def test_what_a_datetime_cannot_hold_is_left_to_pg8000(engine, value):
    with single_statement(engine) as conn:
        (row,) = conn.rows(
            text("SELECT CAST(:v AS timestamptz) AS t, CAST(CAST(:v AS timestamptz) AS text) AS raw"), {"v": value}
        )
    assert row.t == pg8000_timestamptz_in(row.raw)


def test_sqlalchemy_results_and_the_databases_clock_agree(engine):
    with engine.connect() as conn:
        moment = conn.execute(text("SELECT now()")).scalar_one()
    assert isinstance(moment, datetime)
    assert abs(moment - datetime.now(UTC)) < timedelta(minutes=5)


def test_an_offset_other_than_utc_keeps_its_instant():
    assert timestamptz_in("2026-12-05 10:35:49.25+05:30") == datetime(2026, 12, 5, 5, 5, 49, 250000, tzinfo=UTC)
