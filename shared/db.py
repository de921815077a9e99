"""The one connection factory: a pooled SQLAlchemy engine over pg8000.

With INSTANCE_CONNECTION_NAME the connections come from the Cloud SQL Python
Connector; otherwise from DATABASE_URL. The engine is made on first use and
kept for the life of the instance, so warm invocations reuse open connections.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit

import sqlalchemy
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from shared.config import DatabaseSettings
from shared.errors import Unavailable
from shared.instance import InstanceCache
from shared.logs import get_logger

log = get_logger("db")

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

# Seconds that a database read may take beyond the statement timeout before the
# connection is given up as dead (see make_engine).
SOCKET_TIMEOUT_MARGIN_SECONDS = 5


def _pg8000_url(url: str) -> sqlalchemy.URL:
    parsed = sqlalchemy.make_url(url)
    return parsed.set(drivername="postgresql+pg8000")


def make_engine(settings: DatabaseSettings, connector_factory: Callable[..., Any] | None = None) -> Engine:
    """Build the pooled engine for these settings.

    `connector_factory` stands in for google.cloud.sql.connector.Connector (tests
    pass one that hands out local connections, so the wiring runs without a cloud).
    """
    statement_timeout = settings.statement_timeout_ms
    # The statement timeout is enforced by the server. A server that cannot answer
    # at all (frozen, or the network drops its packets) needs a client-side bound
    # too, or a read waits for ever and the request threads pile up behind it. A
    # few seconds above the statement timeout, so that a slow statement is still
    # ended by the server, cleanly.
    socket_timeout = statement_timeout / 1000 + SOCKET_TIMEOUT_MARGIN_SECONDS if statement_timeout else None
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
        # A cheap check on checkout, so that connections broken by a database
        # restart are replaced instead of failing the next request.
        pool_pre_ping=True,
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
                settings.instance_connection_name,
                "pg8000",
                user=settings.user,
                password=None if settings.iam_auth else settings.password,
                db=settings.name,
                enable_iam_auth=settings.iam_auth,
            )

        engine = sqlalchemy.create_engine("postgresql+pg8000://", creator=getconn, **pool_options)
    else:
        assert settings.url is not None
        # pg8000's timeout also bounds opening a connection (the connector has its own).
        engine = sqlalchemy.create_engine(_pg8000_url(settings.url), connect_args={"timeout": socket_timeout},
                                          **pool_options)

    @event.listens_for(engine, "connect")
    def _set_session_defaults(dbapi_connection, _record):
        # Every read and write of the connection, also on the connector's socket
        # (pg8000 keeps its socket in _usock).
        dbapi_connection._usock.settimeout(socket_timeout)
        # A slow or locked database answers 503 after this long instead of
        # holding the instance's request threads forever.
        cursor = dbapi_connection.cursor()
        cursor.execute(f"SET statement_timeout = {int(statement_timeout)}")
        cursor.execute("SET TIME ZONE 'UTC'")
        cursor.close()
        dbapi_connection.commit()

    return engine


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
    return sqlstate(error) in _TRANSIENT_SQLSTATES


@contextmanager
def transaction(engine: Engine) -> Iterator[Connection]:
    """One database transaction; a transient failure becomes Unavailable (503)."""
    try:
        with engine.begin() as connection:
            try:
                yield connection
            except OSError:
                # The socket failed mid-conversation (a reset, or the socket timeout):
                # what it would read next is unknown, so it is closed, never pooled again.
                connection.invalidate()
                raise
    except (sqlalchemy.exc.SQLAlchemyError, OSError) as error:
        if is_transient(error):
            log.warning("database unavailable: %s", describe(error))
            raise Unavailable("The database is unavailable; try again shortly.") from error
        raise


def describe(error: BaseException) -> str:
    """One log-friendly line for a database error (the server's message, not its dict)."""
    original = getattr(error, "orig", error)
    args = getattr(original, "args", ())
    if args and isinstance(args[0], dict):
        return f"{args[0].get('C')}: {args[0].get('M')}"[:500]
    return f"{type(original).__name__}: {original}".splitlines()[0][:500]


def database_target(settings: DatabaseSettings) -> str:
    """Where the engine points, without secrets, for log lines."""
    if settings.instance_connection_name:
        return f"cloudsql:{settings.instance_connection_name}/{settings.name}"
    parts = urlsplit(settings.url or "")
    return f"{parts.hostname}:{parts.port or 5432}{parts.path}"
