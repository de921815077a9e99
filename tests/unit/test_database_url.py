"""DATABASE_URL's options after "?": the libpq ones the product honours, and a clear
error for anything else (pg8000 would refuse an unknown keyword on every connection)."""

from __future__ import annotations

import pytest

from shared.core.config import ConfigError, DatabaseSettings

BASE = "postgresql://user:secret@db.example:5432/visitors"


def settings(monkeypatch, url: str) -> DatabaseSettings:
    monkeypatch.delenv("INSTANCE_CONNECTION_NAME", raising=False)
    monkeypatch.setenv("DATABASE_URL", url)
    return DatabaseSettings.from_env()


@pytest.mark.parametrize(
    "query", ["", "?sslmode=disable", "?sslmode=verify-full", "?sslmode=require&application_name=visitors"]
)
def test_supported_options_are_accepted(monkeypatch, query):
    assert settings(monkeypatch, BASE + query).url == BASE + query


def test_a_root_certificate_must_be_a_file(monkeypatch, tmp_path):
    cert = tmp_path / "server-ca.pem"
    cert.write_text("-----BEGIN CERTIFICATE-----\n")
    assert settings(monkeypatch, f"{BASE}?sslmode=verify-ca&sslrootcert={cert}").url.endswith(str(cert))
    with pytest.raises(ConfigError, match=r"sslrootcert=.*not a file"):
        settings(monkeypatch, f"{BASE}?sslmode=verify-ca&sslrootcert={tmp_path / 'missing.pem'}")


@pytest.mark.parametrize(
    "query, message",
    [
        ("?sslmode=on", "sslmode='on': use one of disable, allow, prefer, require, verify-ca, verify-full"),
        ("?connect_timeout=10", "option 'connect_timeout', which is not supported"),
        ("?sslmode=require&target_session_attrs=any", "option 'target_session_attrs'"),
    ],
)
def test_other_options_fail_with_one_line_naming_them(monkeypatch, query, message):
    with pytest.raises(ConfigError) as error:
        settings(monkeypatch, BASE + query)
    assert message in str(error.value)
    assert "secret" not in str(error.value)
