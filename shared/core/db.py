"""The one connection factory: a pooled SQLAlchemy engine over pg8000 (DATABASE_URL or the
Cloud SQL Connector), kept for the instance; statements run by name (docs/design/database.md)."""

from __future__ import annotations

import collections
import functools
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qs, urlsplit

from shared.core import failures
from shared.core.config import DatabaseSettings
from shared.core.errors import ServiceError
from shared.core.instance import InstanceCache

if TYPE_CHECKING:
    import sqlalchemy
    from sqlalchemy.engine import Connection, Engine

T = TypeVar("T")

STATEMENTS_DIR = Path(__file__).resolve().parents[1] / "statements"

# SQLSTATE classes that mean "the database is not reachable or not answering
# in time" rather than "this statement is wrong": the client may retry.
_TRANSIENT_SQLSTATES = {
    "57014",  # query_canceled: statement_timeout fired
    "57P01",  # admin_shutdown: the server is restarting
    "57P02",  # crash_shutdown
    "57P03",  # cannot_connect_now: the server is starting
    "53300",  # too_many_connections
    "55P03",  # lock_not_available: lock_timeout fired
    "40001",  # serialization_failure
    "40P01",  # deadlock_detected
}

# The server is shutting down, crashed or not yet started: the connection is gone.
_SERVER_GONE_SQLSTATES = {"57P01", "57P02", "57P03"}

# Seconds that a database read may take beyond the statement timeout before the
# connection is given up as dead (see make_engine).
SOCKET_TIMEOUT_MARGIN_SECONDS = 5


def plain_engine(url: str, **options: Any) -> Engine:
    """An engine for a DATABASE_URL with none of the product's settings (tools and tests:
    migrations on a fresh server, an admin connection); `options` go to create_engine."""
    import sqlalchemy

    return sqlalchemy.create_engine(_pg8000_url(url), **options)


def _pg8000_url(url: str) -> sqlalchemy.URL:
    """The URL for SQLAlchemy's pg8000 dialect, without libpq's SSL options (see _ssl_context)."""
    import sqlalchemy

    parsed = sqlalchemy.make_url(url)
    return parsed.set(drivername="postgresql+pg8000").difference_update_query(["sslmode", "sslrootcert"])


def _ssl_context(url: str):
    """pg8000's ssl_context for a DATABASE_URL's sslmode (and sslrootcert), as libpq reads them.

    disable: no TLS, and no SSLRequest round trip (nor the CPU pg8000 spends building a TLS
    context for every new connection: docs/design/performance.md); allow/prefer (the default):
    TLS if the server offers it, unverified; require: TLS or no connection, unverified;
    verify-ca: the server's certificate must chain to sslrootcert (or the system's
    roots); verify-full: that, and the host name must match it."""
    query = parse_qs(urlsplit(url).query)
    mode = query.get("sslmode", ["prefer"])[-1]
    if mode == "disable":
        return False
    if mode in ("allow", "prefer"):
        return None
    import ssl

    context = ssl.create_default_context(cafile=query.get("sslrootcert", [None])[-1])
    if mode == "require":
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif mode == "verify-ca":
        context.check_hostname = False
    return context


def make_engine(settings: DatabaseSettings, connector_factory: Callable[..., Any] | None = None) -> Engine:
    """Build the pooled engine for these settings.

    `connector_factory` stands in for google.cloud.sql.connector.Connector (tests
    pass one that hands out local connections, so the wiring runs without a cloud).
    """
    import sqlalchemy
    from sqlalchemy import event

    statement_timeout = settings.statement_timeout_ms
    # The statement timeout is enforced by the server. A server that cannot answer
    # at all (frozen, or the network drops its packets) needs a client-side bound
    # too, or a read waits for ever and the request threads pile up behind it. A
    # few seconds above the statement timeout, so that a slow statement is still
    # ended by the server, cleanly.
    socket_timeout = statement_timeout / 1000 + SOCKET_TIMEOUT_MARGIN_SECONDS if statement_timeout else None
    # Sent in the connection's startup message, so no statement and no round trip
    # sets them: a slow or locked database answers 503 after the statement timeout
    # instead of holding the instance's request threads for ever; times are UTC.
    session_settings = {"statement_timeout": str(int(statement_timeout)), "TimeZone": "UTC"}
    pool_options = dict(
        # A few connections per instance: Cloud SQL's max_connections is shared by
        # every instance of every function (see README, "Sizing").
        pool_size=settings.pool_size,
        # Short bursts may open a couple more, closed again when returned.
        max_overflow=settings.max_overflow,
        # Waiting longer than this for a pooled connection answers 503 instead of hanging.
        pool_timeout=settings.pool_timeout,
        # 30 minutes: Cloud SQL and proxies drop idle connections; recycle before they do.
        pool_recycle=1800,
        # No ping on checkout (it would be one more wait for the server on every
        # request, a quarter of create_session's). A connection broken by a restart
        # fails its request with 503 instead, and that failure makes the pool drop
        # every connection opened before it (see _server_went_away below).
        pool_pre_ping=False,
    )
    if settings.instance_connection_name:
        if connector_factory is None:
            # Imported here, not at module top: it is heavy and only production needs it.
            from google.cloud.sql.connector import Connector

            connector_factory = Connector
        # LAZY refresh: on serverless the CPU is throttled between requests, so a
        # background refresh of the instance's certificate could stall.
        connector = connector_factory(refresh_strategy="LAZY", ip_type=settings.ip_type.lower())

        def getconn():
            return connector.connect(
                settings.instance_connection_name or "",
                "pg8000",
                user=settings.user,
                password=None if settings.iam_auth else settings.password,
                db=settings.name,
                enable_iam_auth=settings.iam_auth,
                startup_params=session_settings,
            )

        engine = sqlalchemy.create_engine("postgresql+pg8000://", creator=getconn, **pool_options)
    else:
        assert settings.url is not None
        # pg8000's timeout also bounds opening a connection (the connector has its own).
        engine = sqlalchemy.create_engine(
            _pg8000_url(settings.url),
            connect_args={
                "timeout": socket_timeout,
                "ssl_context": _ssl_context(settings.url),
                "startup_params": session_settings,
            },
            **pool_options,
        )

    @event.listens_for(engine, "handle_error")
    def _server_went_away(context):
        # A restarted server answers old connections with "terminating connection"
        # (57P01-57P03) before closing them. Counting that as a lost connection
        # makes SQLAlchemy invalidate the whole pool at once, so one request per
        # instance meets the restart instead of one per pooled connection.
        if sqlstate(context.original_exception) in _SERVER_GONE_SQLSTATES:
            context.is_disconnect = True

    # Read by Statements (single_statement): run statements as prepared statements.
    engine.update_execution_options(**{_PREPARED_STATEMENTS: settings.prepared_statements})

    from pg8000.converters import TIMESTAMPTZ

    @event.listens_for(engine, "connect")
    def _bound_socket_reads(dbapi_connection, _record):
        # Every read and write of the connection, also on the connector's socket
        # (pg8000 keeps its socket in _usock; neither it nor the connector takes a
        # timeout for a socket the connector opened).
        dbapi_connection._usock.settimeout(socket_timeout)
        _send_at_once(dbapi_connection._usock)
        # timestamptz values (every created_at the functions answer with) read by
        # datetime.fromisoformat, cheaper than pg8000's strptime (docs/design/performance.md).
        dbapi_connection.register_in_adapter(TIMESTAMPTZ, timestamptz_in)

    return engine


def _send_at_once(sock) -> None:
    """TCP_NODELAY on a TCP connection. pg8000 writes a statement whose parameters pass its
    buffer (a batch of responses, a 64 KiB response) in more than one segment; Nagle's algorithm
    holds the last one back until the server acknowledges the first, which the server delays
    (delayed ACK, 40 ms on Linux) while it waits for the rest: ~40 ms on every such statement."""
    import socket

    if sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def timestamptz_in(text: str):
    """A timestamptz as PostgreSQL writes it (DateStyle ISO: 2026-12-05 05:05:49.123456+00) as an
    aware datetime, by fromisoformat rather than pg8000's slower strptime; what fromisoformat refuses
    (infinity, BC, years past 9999) goes to pg8000's own reader (docs/design/performance.md)."""
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        from pg8000.converters import timestamptz_in as pg8000_timestamptz_in

        return pg8000_timestamptz_in(text)


_engine: InstanceCache[Engine] = InstanceCache(
    lambda: make_engine(DatabaseSettings.from_env()), close=lambda engine: engine.dispose()
)


def get_engine() -> Engine:
    """The instance's engine, created on first use."""
    return _engine.get()


def reset_engine() -> None:
    """Forget the cached engine (tests, and after a fork)."""
    _engine.reset()


def sqlstate(error: BaseException) -> str | None:
    """The PostgreSQL SQLSTATE of a pg8000 error wrapped by SQLAlchemy, if any."""
    original = getattr(error, "orig", error)
    args = getattr(original, "args", ())
    if args and isinstance(args[0], dict):
        return args[0].get("C")
    return None


def is_transient(error: BaseException) -> bool:
    """Whether a database error means "unavailable, try again" rather than a bug."""
    import sqlalchemy

    if isinstance(error, OSError):
        # A socket error that pg8000 did not wrap: it lets a reset through raw while
        # it reads the first bytes of a reply or negotiates a new connection (as when
        # the server restarts), and SQLAlchemy passes non-DBAPI errors on unchanged.
        return True
    if isinstance(error, sqlalchemy.exc.DBAPIError) and error.connection_invalidated:
        return True
    if isinstance(error, (sqlalchemy.exc.TimeoutError,)):  # pool exhausted
        return True
    if isinstance(error, (sqlalchemy.exc.InterfaceError, sqlalchemy.exc.OperationalError)):
        return True
    import pg8000

    if isinstance(error, pg8000.exceptions.InterfaceError):
        # The same, raised by pg8000 itself for a prepared statement (Statements).
        return True
    return sqlstate(error) in _TRANSIENT_SQLSTATES


def statement_text(name: str) -> str:
    """The SQL of shared/statements/NAME.sql, as PostgreSQL receives it."""
    return (STATEMENTS_DIR / f"{name}.sql").read_text(encoding="utf-8").strip()


@functools.cache
def statement(name: str) -> sqlalchemy.TextClause:
    """The executable form of shared/statements/NAME.sql (:named parameters), read once."""
    import sqlalchemy

    return sqlalchemy.text(statement_text(name))


class RaceLost(Exception):
    """A statement found that a concurrent request was inserting the same row, and
    decided nothing: run it again (its next snapshot sees the other's row)."""


def rerun_if_race_lost(run: Callable[[], T], gave_up: ServiceError, attempts: int = 3) -> T:
    """run(), again while it raises RaceLost; `gave_up` after `attempts` lost races."""
    for _attempt in range(attempts):
        try:
            return run()
        except RaceLost:
            continue
    raise gave_up


def _unavailable_when_transient():
    """A transient database failure becomes DependencyUnavailable (503 with Retry-After)."""
    return failures.unavailable_when("database", is_transient, "The database is unavailable; try again shortly.")


@contextmanager
def _never_pooled_after_socket_error(connection: Connection) -> Iterator[None]:
    try:
        yield
    except OSError:
        # The socket failed mid-conversation (a reset, or the socket timeout):
        # what it would read next is unknown, so it is closed, never pooled again.
        connection.invalidate()
        raise


@contextmanager
def transaction(engine: Engine) -> Iterator[Connection]:
    """One database transaction (BEGIN ... COMMIT, rolled back if the block raises)."""
    with _unavailable_when_transient(), engine.begin() as connection:
        with _never_pooled_after_socket_error(connection):
            yield connection


@contextmanager
def read_only_snapshot(engine: Engine) -> Iterator[Connection]:
    """One read-only REPEATABLE READ transaction: every statement in the block sees the same
    snapshot, so the parts of an export agree with each other (docs/design/exports.md)."""
    with _unavailable_when_transient(), engine.connect() as connection:
        with _never_pooled_after_socket_error(connection):
            connection.execute(statement("db/read_only_snapshot"))
            yield connection


@contextmanager
def single_statement(engine: Engine) -> Iterator[Statements]:
    """Statements that each commit on their own, with no BEGIN/COMMIT (see Statements).

    For work that is ONE statement (or independent reads): PostgreSQL runs every
    statement atomically anyway, so the explicit transaction only costs pg8000
    four more waits for the server (BEGIN 1, COMMIT 3; bench/README.md). The
    driver's own autocommit switch is used rather than SQLAlchemy's AUTOCOMMIT
    isolation level, whose reset on return to the pool costs more round trips
    than it saves. Nothing written here can be rolled back by raising.
    """
    with _unavailable_when_transient(), engine.connect() as connection:
        driver_connection: Any = connection.connection.dbapi_connection
        driver_connection.autocommit = True
        try:
            with _never_pooled_after_socket_error(connection):
                yield Statements(engine, connection)
        finally:
            # Back to the pool as it came out of it: transactions for everyone else.
            driver_connection.autocommit = False


# Statements a connection keeps prepared at most: the product's single-statement
# texts are a handful of files; a text made at run time must not grow the
# server's memory without end, so past this the rest run unprepared.
MAX_PREPARED_PER_CONNECTION = 32


class Statements:
    """What single_statement hands out: run a statement (prepared once per connection with
    DB_PREPARED_STATEMENTS), get its rows (docs/design/database.md).

        with single_statement(engine) as conn:
            row = conn.first(statement("sessions/get_visitor_user"), {"user_id": uid})"""

    def __init__(self, engine: Engine, connection: Connection):
        self.engine = engine
        self.connection = connection

    def rows(self, clause: sqlalchemy.TextClause, params: Mapping[str, Any] | None = None) -> list:
        """Every row the statement returns (an empty list for one that returns none);
        each row's columns are attributes (row.visitor_number)."""
        params = dict(params or {})
        prepared = self._prepared(clause.text)
        if prepared is None:
            result = self.connection.execute(clause, params)
            return list(result.all()) if result.returns_rows else []
        statement_, row = prepared
        try:
            rows = statement_.run(**params)
        except Exception as error:
            self._after_driver_error(error)
            raise
        if rows is None:
            return []
        return [row(*values) for values in rows]

    def first(self, clause: sqlalchemy.TextClause, params: Mapping[str, Any] | None = None):
        """The statement's first row, None if it returns none."""
        rows = self.rows(clause, params)
        return rows[0] if rows else None

    def _prepared(self, sql: str):
        if not self.engine.get_execution_options().get(_PREPARED_STATEMENTS, False):
            return None
        pooled = self.connection.connection
        prepared = pooled.info.setdefault("prepared_statements", {})
        if sql not in prepared:
            if len(prepared) >= MAX_PREPARED_PER_CONNECTION:
                return None
            from pg8000.native import PreparedStatement

            try:
                statement_ = PreparedStatement(pooled.dbapi_connection, sql)
            except Exception as error:
                self._after_driver_error(error)
                raise
            # The row type from the columns the server described when it prepared the
            # statement (none for a statement that returns no rows), made once.
            prepared[sql] = (statement_, _row_type(tuple(column["name"] for column in statement_.cols or ())))
        return prepared[sql]

    def _after_driver_error(self, error: Exception) -> None:
        """What SQLAlchemy does after its own executions fail (its pg8000 dialect's
        is_disconnect, and _server_went_away above), for the driver's: a connection
        that failed mid-conversation is closed, never pooled again; a lost
        connection or a server that went away (restart) takes every pooled
        connection with it, so that one request per instance meets the restart."""
        import pg8000

        # A raw OSError is handled by single_statement's _never_pooled_after_socket_error.
        if isinstance(error, pg8000.exceptions.InterfaceError) or sqlstate(error) in _SERVER_GONE_SQLSTATES:
            self.connection.invalidate()
            # Closes the pooled connections, all opened before the failure, and
            # starts a new pool; a connection another request holds fails on its
            # own and is closed then.
            self.engine.dispose()


# make_engine's execution option: DB_PREPARED_STATEMENTS (an engine made elsewhere prepares nothing).
_PREPARED_STATEMENTS = "visitors_prepared_statements"


@functools.lru_cache(maxsize=256)
def _row_type(columns: tuple[str, ...]):
    return collections.namedtuple("Row", columns, rename=True)
