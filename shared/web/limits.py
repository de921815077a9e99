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


def encoded_size(value: Any) -> int:
    """Bytes of the value as compact UTF-8 JSON (how it is measured against the limits)."""
    return len(encode_data(value).encode("utf-8"))


def encode_data(value: Any) -> str:
    """The value as compact JSON text; ValueError for numbers JSON cannot hold (1e999 parses as inf)."""
    try:
        return compact_json(value)
    except ValueError:
        raise ValueError("numbers must be finite (1e999 and the like are out of range)") from None
