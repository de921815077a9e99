"""`python -m shared.migrate` checks every setting before it connects to anything."""

from __future__ import annotations

import pytest

from shared.ops import cli, migrate


def test_bad_settings_are_all_printed_and_nothing_runs(monkeypatch, capsys):
    monkeypatch.setenv("INSTANCE_CONNECTION_NAME", "acme")
    monkeypatch.setenv("DB_USER", "postgres")
    monkeypatch.setenv("DB_PASS", "secret")
    monkeypatch.setenv("ALLOWED_ORIGINS", "acme.web.app")
    monkeypatch.setenv("LOG_LEVEL", "verbose")
    monkeypatch.setattr(migrate, "apply_migrations", lambda engine: pytest.fail("migrations ran"))

    assert cli.run("migrate", []) == 2

    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        "INSTANCE_CONNECTION_NAME='acme' is malformed: use PROJECT:REGION:INSTANCE",
        "DB_NAME is not set: Cloud SQL (INSTANCE_CONNECTION_NAME) needs the database name",
        "ALLOWED_ORIGINS has 'acme.web.app', which is not an origin: use scheme://host[:port], comma-separated",
        "LOG_LEVEL='verbose' is not a log level: use one of DEBUG, INFO, WARNING, ERROR, CRITICAL",
    ]
    assert "secret" not in err
