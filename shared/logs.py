"""Structured JSON logs on stdout, in the shape Cloud Logging reads.

Each line carries `severity`, `message` and, while a request that sent
X-Cloud-Trace-Context is being served, `logging.googleapis.com/trace`, so
that Cloud Logging groups a request's lines under its trace.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import sys

_trace: contextvars.ContextVar[str | None] = contextvars.ContextVar("trace", default=None)

_SEVERITY = {"WARNING": "WARNING", "ERROR": "ERROR", "CRITICAL": "CRITICAL", "INFO": "INFO", "DEBUG": "DEBUG"}


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


def set_trace(header: str | None) -> contextvars.Token:
    """Remember the request's trace (from X-Cloud-Trace-Context: TRACE_ID/SPAN;o=1)."""
    trace = None
    if header:
        trace_id = header.split("/", 1)[0].strip()
        if trace_id and trace_id.isalnum() and len(trace_id) <= 64:
            project = os.environ.get("GOOGLE_CLOUD_PROJECT", "").strip()
            trace = f"projects/{project}/traces/{trace_id}" if project else trace_id
    return _trace.set(trace)


def reset_trace(token: contextvars.Token) -> None:
    _trace.reset(token)


def get_logger(name: str) -> logging.Logger:
    """A logger whose lines go to stdout as JSON (configured once per process)."""
    root = logging.getLogger("visitors")
    if not root.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(CloudLoggingFormatter())
        root.addHandler(handler)
        root.setLevel(os.environ.get("LOG_LEVEL", "INFO").upper())
        root.propagate = False
    return root.getChild(name)
