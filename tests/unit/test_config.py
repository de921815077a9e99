"""Settings: each read on first use, each problem one line naming its variable."""

from __future__ import annotations

import dataclasses

import pytest

from shared.core import config
from shared.core.config import ConfigError, DatabaseSettings

SETTINGS = (
    "DATABASE_URL",
    "INSTANCE_CONNECTION_NAME",
    "DB_USER",
    "DB_PASS",
    "DB_NAME",
    "DB_IAM_AUTH",
    "DB_IP_TYPE",
    "DB_POOL_SIZE",
    "DB_MAX_OVERFLOW",
    "DB_POOL_TIMEOUT",
    "DB_STATEMENT_TIMEOUT_MS",
    "DB_PREPARED_STATEMENTS",
    "GOOGLE_CLOUD_PROJECT",
    "GCLOUD_PROJECT",
    "ALLOWED_ORIGINS",
    "RETRY_AFTER_SECONDS",
    "STORAGE_BUCKET",
    "UPLOAD_EVENT_MAX_AGE_SECONDS",
    "LOG_LEVEL",
    "APP_CHECK",
    "APP_CHECK_JWKS_URL",
    "TOKEN_REVOCATION_CHECK_SECONDS",
    "MAINTENANCE_CERTS_URL",
    *config.DEPLOYED_SIGNALS,
    *config.DEV_ONLY_SETTINGS,
)


@pytest.fixture(autouse=True)
def no_settings(monkeypatch):
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    "value, level",
    [("", "INFO"), ("debug", "DEBUG"), ("Warning", "WARNING"), (" ERROR ", "ERROR"), ("critical", "CRITICAL")],
)
def test_log_level_is_any_case_and_info_by_default(monkeypatch, value, level):
    monkeypatch.setenv("LOG_LEVEL", value)
    assert config.log_level() == level


@pytest.mark.parametrize("value", ["verbose", "warn", "10", "TRACE"])
def test_a_bad_log_level_is_one_line_naming_the_variable_and_the_allowed_values(monkeypatch, value):
    monkeypatch.setenv("LOG_LEVEL", value)
    with pytest.raises(ConfigError) as error:
        config.log_level()
    assert str(error.value) == (
        f"LOG_LEVEL={value!r} is not a log level: use one of DEBUG, INFO, WARNING, ERROR, CRITICAL"
    )


def test_the_project_is_optional_where_it_only_labels_lines(monkeypatch):
    assert config.project_id_or_none() is None
    with pytest.raises(ConfigError, match=r"^GOOGLE_CLOUD_PROJECT is not set"):
        config.project_id()
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", " acme-study ")
    assert config.project_id_or_none() == config.project_id() == "acme-study"


def test_database_settings_are_built_with_keywords_only(monkeypatch):
    with pytest.raises(TypeError):
        DatabaseSettings("postgresql://u@h/d", None, None, None, None, False, "PUBLIC", 5, 2, 10, 5000)  # type: ignore[misc]
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@db.example/visitors")
    assert DatabaseSettings.from_env() == DatabaseSettings(
        url="postgresql://u:p@db.example/visitors",
        pool_size=5,
        max_overflow=2,
        pool_timeout=10,
        statement_timeout_ms=5000,
    )


def test_cloud_sql_settings(monkeypatch):
    for name, value in {
        "INSTANCE_CONNECTION_NAME": "p:r:i",
        "DB_USER": "fn",
        "DB_NAME": "visitors",
        "DB_IAM_AUTH": "true",
        "DB_IP_TYPE": "private",
        "DB_POOL_SIZE": "3",
    }.items():
        monkeypatch.setenv(name, value)
    settings = DatabaseSettings.from_env()
    assert dataclasses.asdict(settings) == {
        "url": None,
        "instance_connection_name": "p:r:i",
        "user": "fn",
        "password": None,
        "name": "visitors",
        "iam_auth": True,
        "ip_type": "PRIVATE",
        "pool_size": 3,
        "max_overflow": 2,
        "pool_timeout": 10,
        "statement_timeout_ms": 5000,
        "prepared_statements": True,
    }


def test_check_lists_every_problem_at_once_one_line_each(monkeypatch):
    for name, value in {
        "INSTANCE_CONNECTION_NAME": "acme",
        "DB_NAME": "visitors",
        "DB_POOL_SIZE": "many",
        "ALLOWED_ORIGINS": "https://ok.example,acme.web.app",
        "STORAGE_BUCKET": "Bad_Bucket!",
        "RETRY_AFTER_SECONDS": "0",
        "LOG_LEVEL": "verbose",
    }.items():
        monkeypatch.setenv(name, value)
    assert config.check() == [
        "DB_POOL_SIZE='many' is not an integer: set it to a whole number such as 5",
        "INSTANCE_CONNECTION_NAME='acme' is malformed: use PROJECT:REGION:INSTANCE",
        "DB_USER is not set: Cloud SQL (INSTANCE_CONNECTION_NAME) needs the database user",
        "DB_PASS is not set: give the database password, or set DB_IAM_AUTH=true",
        "ALLOWED_ORIGINS has 'acme.web.app', which is not an origin: use scheme://host[:port], comma-separated",
        "RETRY_AFTER_SECONDS=0 is too small: it must be at least 1",
        "STORAGE_BUCKET='Bad_Bucket!' is not a bucket name: use lowercase letters, digits, - _ . "
        "such as my-project.appspot.com",
        "LOG_LEVEL='verbose' is not a log level: use one of DEBUG, INFO, WARNING, ERROR, CRITICAL",
    ]


def test_check_is_empty_when_every_setting_is_fine(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@db.example/visitors?sslmode=require")
    assert config.check() == []  # GOOGLE_CLOUD_PROJECT is needed only by ID tokens and uploads


def test_check_needs_a_database():
    assert config.check() == [
        "DATABASE_URL is not set: set DATABASE_URL=postgresql://USER:PASSWORD@HOST:PORT/DBNAME, "
        "or INSTANCE_CONNECTION_NAME, DB_USER and DB_NAME for Cloud SQL"
    ]


def test_check_reads_a_given_environment_instead_of_the_process_one(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@db.example/visitors")
    deployed = {"INSTANCE_CONNECTION_NAME": "p:r:i", "DB_USER": "fn", "DB_NAME": "visitors", "DB_IAM_AUTH": "ture"}
    assert config.check(deployed) == ["DB_IAM_AUTH='ture' is not a boolean: set it to true or false"]
    assert config.check() == []


def test_first_use_says_one_line_and_carries_every_problem_of_the_database_settings(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@db.example/visitors?sslmode=on&connect_timeout=3")
    monkeypatch.setenv("DB_POOL_TIMEOUT", "0")
    with pytest.raises(ConfigError) as error:
        DatabaseSettings.from_env()
    assert error.value.problems == (
        "DB_POOL_TIMEOUT=0 is too small: it must be at least 1",
        "DATABASE_URL has sslmode='on': use one of disable, allow, prefer, require, verify-ca, verify-full",
        "DATABASE_URL has the option 'connect_timeout', which is not supported: "
        "use only sslmode, sslrootcert, application_name",
    )
    # The log line of a first use is one line, naming its variable; check() lists them all.
    assert str(error.value) == "DB_POOL_TIMEOUT=0 is too small: it must be at least 1"


@pytest.mark.parametrize("value, mode", [("", "off"), ("off", "off"), ("Monitor", "monitor"), (" ENFORCE ", "enforce")])
def test_app_check_is_off_by_default_and_any_case(monkeypatch, value, mode):
    monkeypatch.setenv("APP_CHECK", value)
    assert config.app_check_mode() == mode


@pytest.mark.parametrize("value", ["on", "true", "1", "enforcing"])
def test_a_bad_app_check_mode_is_one_line_naming_the_variable_and_the_modes(monkeypatch, value):
    monkeypatch.setenv("APP_CHECK", value)
    with pytest.raises(ConfigError) as error:
        config.app_check_mode()
    assert str(error.value) == f"APP_CHECK={value!r} is not a mode: use one of off, monitor, enforce"
    assert any(line.startswith("APP_CHECK=") for line in config.check({"APP_CHECK": value}))


def test_the_app_check_keys_url_is_unset_or_a_local_test_server(monkeypatch):
    assert config.app_check_jwks_url() is None
    monkeypatch.setenv("APP_CHECK_JWKS_URL", "http://127.0.0.1:8123/jwks")
    assert config.app_check_jwks_url() == "http://127.0.0.1:8123/jwks"
    for url in (
        "https://firebaseappcheck.googleapis.com/v1/jwks",
        "http://keys.example.com/jwks",
        "file:///etc/passwd",
        "127.0.0.1:8123",
    ):
        monkeypatch.setenv("APP_CHECK_JWKS_URL", url)
        with pytest.raises(ConfigError, match=r"^APP_CHECK_JWKS_URL=.* is for tests only"):
            config.app_check_jwks_url()


@pytest.mark.parametrize("value, seconds", [("", 300), ("0", 0), (" 60 ", 60), ("3600", 3600)])
def test_token_revocation_check_is_every_5_minutes_by_default_and_0_is_every_request(monkeypatch, value, seconds):
    monkeypatch.setenv("TOKEN_REVOCATION_CHECK_SECONDS", value)
    assert config.token_revocation_check_seconds() == seconds


@pytest.mark.parametrize(
    "value, line",
    [
        ("5m", "TOKEN_REVOCATION_CHECK_SECONDS='5m' is not an integer: set it to a whole number such as 300"),
        ("1.5", "TOKEN_REVOCATION_CHECK_SECONDS='1.5' is not an integer: set it to a whole number such as 300"),
        ("-1", "TOKEN_REVOCATION_CHECK_SECONDS=-1 is too small: it must be at least 0"),
    ],
)
def test_a_bad_token_revocation_check_is_one_line_naming_the_variable(monkeypatch, value, line):
    monkeypatch.setenv("TOKEN_REVOCATION_CHECK_SECONDS", value)
    with pytest.raises(ConfigError) as error:
        config.token_revocation_check_seconds()
    assert str(error.value) == line
    assert line in config.check(
        {"DATABASE_URL": "postgresql://u:p@db.example/visitors", "TOKEN_REVOCATION_CHECK_SECONDS": value}
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1.attacker.example/certs",
        "http://localhost@attacker.example/certs",
        "http://localhost.attacker.example/",
        "http://[::1].attacker.example/",
        "http://attacker.example/?127.0.0.1",
        "ftp://127.0.0.1/certs",
        "127.0.0.1:8080/certs",
        "http://127.0.0.1:80@attacker.example/",
    ],
)
def test_the_maintenance_certs_url_is_https_or_exactly_a_local_host(monkeypatch, url):
    monkeypatch.setenv("MAINTENANCE_CERTS_URL", url)
    with pytest.raises(ConfigError, match=r"^MAINTENANCE_CERTS_URL="):
        config.maintenance_certs_url()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8123/certs",
        "http://localhost:9/certs",
        "http://[::1]:80/certs",
        "https://www.googleapis.com/oauth2/v1/certs",
        "https://certs.example.org/x",
    ],
)
def test_a_local_or_https_maintenance_certs_url_is_accepted(monkeypatch, url):
    monkeypatch.setenv("MAINTENANCE_CERTS_URL", url)
    assert config.maintenance_certs_url() == url


@pytest.mark.parametrize("signal", config.DEPLOYED_SIGNALS)
@pytest.mark.parametrize("name", config.DEV_ONLY_SETTINGS)
def test_a_dev_only_setting_is_refused_where_cloud_run_says_deployed(monkeypatch, signal, name):
    monkeypatch.setenv(name, "http://127.0.0.1:9099" if name.endswith("_URL") else "127.0.0.1:9099")
    config.refuse_dev_settings_when_deployed()  # locally: fine
    assert not [line for line in config.check() if name in line]

    monkeypatch.setenv(signal, "create-session")
    with pytest.raises(ConfigError, match=rf"^{name} is for local development and tests only, .*\({signal}="):
        config.refuse_dev_settings_when_deployed()
    assert [line for line in config.check() if name in line and signal in line]


def test_every_dev_only_setting_found_is_named_in_one_line(monkeypatch):
    monkeypatch.setenv("K_SERVICE", "export-data")
    monkeypatch.setenv("FIREBASE_AUTH_EMULATOR_HOST", "127.0.0.1:9099")
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "http://127.0.0.1:9199")
    with pytest.raises(ConfigError) as error:
        config.refuse_dev_settings_when_deployed()
    assert str(error.value).startswith("FIREBASE_AUTH_EMULATOR_HOST, STORAGE_EMULATOR_HOST are for local")
    assert "\n" not in str(error.value)
