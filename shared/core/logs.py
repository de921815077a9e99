"""Structured JSON logs on stdout, in the shape Cloud Logging reads; LOG_LEVEL is read on
first use, and a bad one never stops an instance (docs/design/http.md)."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import threading

from shared.core import config

_trace: contextvars.ContextVar[str | None] = contextvars.ContextVar("trace", default=None)

_SEVERITY = {"WARNING": "WARNING", "ERROR": "ERROR", "CRITICAL": "CRITICAL", "INFO": "INFO", "DEBUG": "DEBUG"}

_ROOT = "visitors"


class CloudLoggingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "severity": _SEVERITY.get(record.levelname, "DEFAULT"),
            "message": record.getMessage(),
            "logger": record.name,
        }
        fields = getattr(record, "fields", None)
        if fields:
            entry.update(fields)
        if record.exc_info:
            entry["stack_trace"] = self.formatException(record.exc_info)
        trace = _trace.get()
        if trace:
            entry["logging.googleapis.com/trace"] = trace
        return json.dumps(entry, default=str)


class _LevelFromConfig(logging.Filter):
    """Sets the level on the first line; until then every line reaches here, and those
    below the level are dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        apply_log_level()
        return record.levelno >= logging.getLogger(_ROOT).getEffectiveLevel()


_level_lock = threading.Lock()
_level_applied = False


def apply_log_level() -> None:
    """Set the level from LOG_LEVEL, once per process (INFO, and one ERROR line, if it is bad)."""
    global _level_applied
    if _level_applied:
        return
    with _level_lock:
        if _level_applied:
            return
        try:
            level, problem = config.log_level(), None
        except config.ConfigError as error:
            level, problem = "INFO", error
        logging.getLogger(_ROOT).setLevel(level)
        _level_applied = True
    if problem:  # after the lock: this line passes through the filter above
        get_logger("logs").error("%s (logging at INFO)", problem)


def reset_log_level() -> None:
    """Read LOG_LEVEL again on the next request or line (tests that change the environment)."""
    global _level_applied
    with _level_lock:
        logging.getLogger(_ROOT).setLevel(logging.DEBUG)
        _level_applied = False


def set_trace(header: str | None) -> contextvars.Token:
    """Remember the request's trace (from X-Cloud-Trace-Context: TRACE_ID/SPAN;o=1).

    Called at the start of every request, so it is also where the level is first set.
    """
    apply_log_level()
    trace = None
    if header:
        trace_id = header.split("/", 1)[0].strip()
        if trace_id and trace_id.isalnum() and len(trace_id) <= 64:
            project = config.project_id_or_none()
            trace = f"projects/{project}/traces/{trace_id}" if project else trace_id
    return _trace.set(trace)


def reset_trace(token: contextvars.Token) -> None:
    _trace.reset(token)


def get_logger(name: str) -> logging.Logger:
    """A logger whose lines go to stdout as JSON (the handler is attached once per process)."""
    root = logging.getLogger(_ROOT)
    if not root.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(CloudLoggingFormatter())
        handler.addFilter(_LevelFromConfig())
        root.addHandler(handler)
        # Every line reaches the handler's filter until it has set the level from LOG_LEVEL.
        root.setLevel(logging.DEBUG)
        root.propagate = False
    return root.getChild(name)
