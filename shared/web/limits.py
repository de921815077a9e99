"""The limits of what a request may carry (docs/api.md), and how a JSON value is measured against them."""

from __future__ import annotations

from typing import Any

from shared.core.encodings import compact_json

MAX_METADATA_BYTES = 16 * 1024
MAX_DATA_BYTES = 64 * 1024
# PostgreSQL INTEGER, the type of responses.level.
MAX_LEVEL = 2**31 - 1
DISPLAY_NAME_MAX = 100
CLAIM_CODE_MAX = 32  # 8 characters, with room for the spaces and dashes a person may type
# visitor_number_seq is a BIGINT sequence starting at 1.
MAX_VISITOR_NUMBER = 2**63 - 1
# An upload ticket's file name: one path segment of at most this many characters, counted in UTF-16
# code units (as many as Python's characters, or more), so that storage.rules' fileName.size() <= 200
# holds however the rules count.
UPLOAD_NAME_MAX = 200


def upload_name_problem(name: str) -> str | None:
    """Why `name` cannot be an upload ticket's file name (sessions/{sessionId}/{name}), or None."""
    import unicodedata

    if not name:
        return f"must be 1 to {UPLOAD_NAME_MAX} characters"
    if len(name.encode("utf-16-le")) // 2 > UPLOAD_NAME_MAX:
        return f"must be at most {UPLOAD_NAME_MAX} characters"
    if "/" in name:
        return "must be one path segment: no '/'"
    if name in (".", ".."):
        return "must not be '.' or '..'"
    if any(unicodedata.category(ch) == "Cc" for ch in name):
        return "must not contain control characters (newlines, tabs, ...)"
    return None


def encoded_size(value: Any) -> int:
    """Bytes of the value as compact UTF-8 JSON (how it is measured against the limits)."""
    return len(encode_data(value).encode("utf-8"))


def encode_data(value: Any) -> str:
    """The value as compact JSON text; ValueError for numbers JSON cannot hold (1e999 parses as inf)."""
    try:
        return compact_json(value)
    except ValueError:
        raise ValueError("numbers must be finite (1e999 and the like are out of range)") from None
