"""Settings: each read on first use, each problem one line naming its variable."""

from __future__ import annotations

import dataclasses

import pytest

from shared import config
from shared.config import ConfigError, DatabaseSettings

SETTINGS = ("DATABASE_URL", "INSTANCE_CONNECTION_NAME", "DB_USER", "DB_PASS", "DB_NAME", "DB_IAM_AUTH",
            "DB_IP_TYPE", "DB_POOL_SIZE", "DB_MAX_OVERFLOW", "DB_POOL_TIMEOUT", "DB_STATEMENT_TIMEOUT_MS",
            "DB_PREPARED_STATEMENTS", "GOOGLE_CLOUD_PROJECT", "GCLOUD_PROJECT", "ALLOWED_ORIGINS",
            "RETRY_AFTER_SECONDS", "STORAGE_BUCKET", "UPLOAD_EVENT_MAX_AGE_SECONDS", "LOG_LEVEL")


@pytest.fixture(autouse=True)
def no_settings(monkeypatch):
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("value, level", [("", "INFO"), ("debug", "DEBUG"), ("Warning", "WARNING"),
                                          (" ERROR ", "ERROR"), ("critical", "CRITICAL")])
def test_log_level_is_any_case_and_info_by_default(monkeypatch, value, level):
    monkeypatch.setenv("LOG_LEVEL", value)
    assert config.log_level() == level


@pytest.mark.parametrize("value", ["verbose", "warn", "10", "TRACE"])
def test_a_bad_log_level_is_one_line_naming_the_variable_and_the_allowed_values(monkeypatch, value):
    monkeypatch.setenv("LOG_LEVEL", value)
    with pytest.raises(ConfigError) as error:
        config.log_level()
    assert str(error.value) == (f"LOG_LEVEL={value!r} is not a log level: "
                                "use one of DEBUG, INFO, WARNING, ERROR, CRITICAL")


def test_the_project_is_optional_where_it_only_labels_lines(monkeypatch):
    assert config.project_id_or_none() is None
    with pytest.raises(ConfigError, match="^GOOGLE_CLOUD_PROJECT is not set"):
        config.project_id()
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", " acme-study ")
    assert config.project_id_or_none() == config.project_id() == "acme-study"


def test_database_settings_are_built_with_keywords_only(monkeypatch):
    with pytest.raises(TypeError):
        DatabaseSettings("postgresql://u@h/d", None, None, None, None, False, "PUBLIC", 5, 2, 10, 5000)  # type: ignore[misc]
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@db.example/visitors")
    assert DatabaseSettings.from_env() == DatabaseSettings(
        url="postgresql://u:p@db.example/visitors", pool_size=5, max_overflow=2, pool_timeout=10,
        statement_timeout_ms=5000)


def test_cloud_sql_settings(monkeypatch):
    for name, value in {"INSTANCE_CONNECTION_NAME": "p:r:i", "DB_USER": "fn", "DB_NAME": "visitors",
                        "DB_IAM_AUTH": "true", "DB_IP_TYPE": "private", "DB_POOL_SIZE": "3"}.items():
        monkeypatch.setenv(name, value)
    settings = DatabaseSettings.from_env()
    assert dataclasses.asdict(settings) == {
        "url": None, "instance_connection_name": "p:r:i", "user": "fn", "password": None, "name": "visitors",
        "iam_auth": True, "ip_type": "PRIVATE", "pool_size": 3, "max_overflow": 2, "pool_timeout": 10,
        "statement_timeout_ms": 5000, "prepared_statements": True}
