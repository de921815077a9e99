"""The Cloud SQL Connector wiring, run without a cloud: a stand-in connector
hands out real pg8000 connections to the local PostgreSQL."""

from urllib.parse import urlsplit

import pg8000.dbapi
import pytest
from sqlalchemy import text

from shared.core.config import DatabaseSettings
from shared.core.db import make_engine


class LocalConnector:
    """Has the shape of google.cloud.sql.connector.Connector; records how it was used."""

    def __init__(self, database_url: str, **options):
        self.options = options
        self.calls = []
        self._url = urlsplit(database_url)

    def __call__(self, **options):  # used as the factory: Connector(refresh_strategy=..., ip_type=...)
        self.options = options
        return self

    def connect(self, instance, driver, **kwargs):
        self.calls.append((instance, driver, kwargs))
        # The real connector passes the driver arguments it does not use itself on to
        # pg8000.dbapi.connect (google/cloud/sql/connector/pg8000.py); so does this one.
        return pg8000.dbapi.connect(
            user="postgres",
            host=self._url.hostname,
            port=self._url.port,
            database=self._url.path.lstrip("/"),
            startup_params=kwargs["startup_params"],
        )


def cloud_sql_settings(monkeypatch, **env) -> DatabaseSettings:
    values = {
        "INSTANCE_CONNECTION_NAME": "my-project:europe-west1:visitors",
        "DB_USER": "visitors-fn",
        "DB_NAME": "postgres",
        **env,
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return DatabaseSettings.from_env()


def test_password_auth_through_the_connector(stack, monkeypatch):
    connector = LocalConnector(stack.database_url)
    engine = make_engine(cloud_sql_settings(monkeypatch, DB_PASS="s3cret"), connector_factory=connector)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar() == 1
            assert conn.execute(text("SHOW statement_timeout")).scalar() == "5s"
    finally:
        engine.dispose()
    assert connector.options == {"refresh_strategy": "LAZY", "ip_type": "public"}
    ((instance, driver, kwargs),) = connector.calls
    assert (instance, driver) == ("my-project:europe-west1:visitors", "pg8000")
    assert kwargs == {
        "user": "visitors-fn",
        "password": "s3cret",
        "db": "postgres",
        "enable_iam_auth": False,
        "startup_params": {"statement_timeout": "5000", "TimeZone": "UTC"},
    }


def test_iam_auth_sends_no_password(stack, monkeypatch):
    connector = LocalConnector(stack.database_url)
    settings = cloud_sql_settings(
        monkeypatch, DB_IAM_AUTH="true", DB_PASS="ignored", DB_IP_TYPE="private", DB_USER="fn@my-project.iam"
    )
    engine = make_engine(settings, connector_factory=connector)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    finally:
        engine.dispose()
    assert connector.options["ip_type"] == "private"
    ((_, _, kwargs),) = connector.calls
    assert kwargs["enable_iam_auth"] is True and kwargs["password"] is None and kwargs["user"] == "fn@my-project.iam"


def test_pool_reuses_connections(stack, monkeypatch):
    connector = LocalConnector(stack.database_url)
    engine = make_engine(cloud_sql_settings(monkeypatch, DB_PASS="x"), connector_factory=connector)
    try:
        for _ in range(20):
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
    finally:
        engine.dispose()
    assert len(connector.calls) == 1


@pytest.mark.parametrize(
    "env, variable",
    [
        ({}, "DATABASE_URL"),
        ({"INSTANCE_CONNECTION_NAME": "just-a-name"}, "INSTANCE_CONNECTION_NAME"),
        ({"INSTANCE_CONNECTION_NAME": "p:r:i", "DB_NAME": "d"}, "DB_USER"),
        ({"INSTANCE_CONNECTION_NAME": "p:r:i", "DB_USER": "u"}, "DB_NAME"),
        ({"INSTANCE_CONNECTION_NAME": "p:r:i", "DB_USER": "u", "DB_NAME": "d"}, "DB_PASS"),
        ({"INSTANCE_CONNECTION_NAME": "p:r:i", "DB_USER": "u", "DB_NAME": "d", "DB_IAM_AUTH": "maybe"}, "DB_IAM_AUTH"),
        ({"DATABASE_URL": "mysql://x@y/z"}, "DATABASE_URL"),
        ({"DATABASE_URL": "postgresql://x@y/z", "DB_POOL_SIZE": "many"}, "DB_POOL_SIZE"),
    ],
)
def test_missing_or_malformed_settings_name_the_variable(monkeypatch, env, variable):
    from shared.core.config import ConfigError

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as raised:
        DatabaseSettings.from_env()
    message = str(raised.value)
    assert message.startswith(variable) and "\n" not in message
