"""The log level comes from LOG_LEVEL on first use: a bad value is one ERROR line, never a crash."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import functions_framework
import pytest

from shared.core import logs

ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.fixture
def log_lines(monkeypatch):
    """The JSON lines the functions log from now on; LOG_LEVEL is read again on first use."""
    logs.get_logger("tests")  # the handler exists once any module has asked for a logger
    (handler,) = [
        h for h in logging.getLogger("visitors").handlers if isinstance(h.formatter, logs.CloudLoggingFormatter)
    ]
    stream = io.StringIO()
    monkeypatch.setattr(handler, "stream", stream)
    monkeypatch.delenv("LOG_LEVEL", raising=False)
    logs.reset_log_level()
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    logs.reset_log_level()


def test_a_bad_log_level_does_not_stop_the_import():
    env = {name: os.environ[name] for name in ("PATH", "HOME", "LANG") if name in os.environ}
    result = subprocess.run(
        [sys.executable, "-c", "import main"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**env, "LOG_LEVEL": "verbose"},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_a_bad_log_level_is_one_error_line_at_the_first_request_and_requests_are_served(monkeypatch, log_lines):
    monkeypatch.setenv("LOG_LEVEL", "verbose")
    client = functions_framework.create_app(target="create_session", source=str(ROOT / "main.py")).test_client()
    for _ in range(2):
        response = client.post("/", json={})  # no credentials: answered without a database
        assert response.status_code == 401
    lines = log_lines()
    about_level = [line for line in lines if "LOG_LEVEL" in line["message"]]
    assert len(about_level) == 1
    (line,) = about_level
    assert line["severity"] == "ERROR"
    assert "'verbose'" in line["message"] and "DEBUG, INFO, WARNING, ERROR, CRITICAL" in line["message"]
    # ... and logging goes on at INFO.
    logs.get_logger("tests").debug("not shown")
    logs.get_logger("tests").info("shown")
    assert [line["message"] for line in log_lines()[len(lines) :]] == ["shown"]


@pytest.mark.parametrize(
    "value, shown", [("", ["info", "warning"]), ("debug", ["debug", "info", "warning"]), ("Warning", ["warning"])]
)
def test_the_level_is_read_on_the_first_line(monkeypatch, log_lines, value, shown):
    monkeypatch.setenv("LOG_LEVEL", value)
    log = logs.get_logger("tests")
    log.debug("debug")
    log.info("info")
    log.warning("warning")
    assert [line["message"] for line in log_lines()] == shown


def test_the_trace_names_the_project(monkeypatch, log_lines):
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "acme-study")
    token = logs.set_trace("0af7651916cd43dd8448eb211c80319c/1;o=1")
    try:
        logs.get_logger("tests").info("traced")
    finally:
        logs.reset_trace(token)
    (line,) = log_lines()
    assert line["logging.googleapis.com/trace"] == "projects/acme-study/traces/0af7651916cd43dd8448eb211c80319c"
