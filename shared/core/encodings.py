"""How values are written out: JSON text and RFC 3339 times, the same everywhere
(HTTP answers, JSONB columns, Storage metadata, log fields)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any


def compact_json(value: Any) -> str:
    """The value as compact JSON text, non-ASCII kept as is; ValueError for a number
    that JSON cannot hold (NaN, or 1e999, which parses as infinity)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def rfc3339(moment: datetime) -> str:
    """A time as RFC 3339 in UTC with microseconds: 2026-12-02T22:18:57.123456Z."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
