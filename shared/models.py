"""Request bodies, validated with pydantic; a bad body becomes 400 invalid_argument."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Annotated, Any, TypeVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError, field_validator

from shared.encodings import compact_json
from shared.errors import InvalidArgument

MAX_METADATA_BYTES = 16 * 1024
MAX_DATA_BYTES = 64 * 1024

ExperimentId = Annotated[StrictStr, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._-]+$")]


def encoded_size(value: Any) -> int:
    """Bytes of the value as compact UTF-8 JSON (how it is measured against the limits)."""
    return len(encode_data(value).encode("utf-8"))


class Body(BaseModel):
    # strict: "5" is not an integer, true is not a number; unknown fields are refused
    # so that a misspelt field is reported instead of silently ignored.
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class NewSession(Body):
    sessionId: UUID | None = None
    experimentId: ExperimentId | None = None
    metadata: dict[str, Any] | None = None

    @field_validator("sessionId", mode="before")
    @classmethod
    def _uuid_text(cls, value):
        return _parse_uuid(value)

    @field_validator("metadata")
    @classmethod
    def _metadata_size(cls, value):
        if value is not None and encoded_size(value) > MAX_METADATA_BYTES:
            raise ValueError(f"must be at most {MAX_METADATA_BYTES} bytes encoded as JSON")
        return value


def _parse_uuid(value):
    if value is None or isinstance(value, UUID):
        return value
    if not isinstance(value, str):
        raise ValueError("must be a UUID string")
    try:
        return UUID(value)
    except ValueError:
        raise ValueError("must be a UUID such as 3f0c8a4e-5b7d-4c1e-9a2b-6d8e0f1a2b3c") from None


B = TypeVar("B", bound=Body)


def parse(model: type[B], document: Any) -> B:
    """Validate a request body against a model."""
    if not isinstance(document, dict):
        raise InvalidArgument("The request body must be a JSON object.")
    try:
        return model.model_validate(document)
    except ValidationError as error:
        raise InvalidArgument(_describe(error)) from None


def _describe(error: ValidationError) -> str:
    problems = []
    for item in error.errors(include_url=False, include_input=False)[:5]:
        field = ".".join(str(part) for part in item["loc"]) or "body"
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "is not a known field"
        elif message.startswith("Value error, "):
            message = message[len("Value error, "):]
        problems.append(f"{field}: {message}")
    return "; ".join(problems)


# PostgreSQL INTEGER, the type of responses.level.
MAX_LEVEL = 2**31 - 1
DISPLAY_NAME_MAX = 100


class NewResponse(Body):
    sessionId: UUID
    responseId: UUID | None = None
    level: Annotated[int, Field(ge=0, le=MAX_LEVEL)] | None = None
    data: Any  # required; any JSON value, null included

    @field_validator("sessionId", mode="before")
    @classmethod
    def _session_uuid(cls, value):
        if value is None:
            raise ValueError("is required (the sessionId that create_session returned)")
        return _parse_uuid(value)

    @field_validator("responseId", mode="before")
    @classmethod
    def _response_uuid(cls, value):
        return _parse_uuid(value)

    @field_validator("data")
    @classmethod
    def _data_size(cls, value):
        if encoded_size(value) > MAX_DATA_BYTES:
            raise ValueError(f"must be at most {MAX_DATA_BYTES} bytes encoded as JSON")
        return value


def encode_data(value: Any) -> str:
    """The value as compact JSON text; ValueError for numbers JSON cannot hold (1e999 parses as inf)."""
    try:
        return compact_json(value)
    except ValueError:
        raise ValueError("numbers must be finite (1e999 and the like are out of range)") from None


CLAIM_CODE_MAX = 32  # 8 characters, with room for the spaces and dashes a person may type


class Registration(Body):
    displayName: Annotated[StrictStr, Field(min_length=1, max_length=DISPLAY_NAME_MAX)] | None = None
    # A claim code from create_claim_code (SPEC §13); its characters are checked by shared.claim_codes.
    claimCode: Annotated[StrictStr, Field(min_length=1, max_length=CLAIM_CODE_MAX)] | None = None

    @field_validator("displayName")
    @classmethod
    def _printable(cls, value):
        import unicodedata

        if value is None:
            return value
        if any(unicodedata.category(ch) == "Cc" for ch in value):
            raise ValueError("must not contain control characters (newlines, tabs, ...)")
        if not value.strip():
            raise ValueError("must not be blank")
        return value


class NewClaimCode(Body):
    """create_claim_code's body: nothing (an empty body is {}); any field is refused."""


# visitor_number_seq is a BIGINT sequence starting at 1.
MAX_VISITOR_NUMBER = 2**63 - 1


class VisitorToErase(Body):
    """erase_visitor's body: the number of the visitor to erase."""

    visitorNumber: Annotated[int, Field(ge=1, le=MAX_VISITOR_NUMBER)]


# Researcher functions' query strings (SPEC §10) -----------------------------------

EXPORT_FORMATS = ("zip", "csv", "jsonl")
EXPORT_TABLES = ("responses", "sessions", "visitors", "uploads")
# In a query string an empty experimentId (`experimentId=`) means the sessions without one.
_EXPERIMENT = re.compile(r"[A-Za-z0-9._-]{1,128}")


@dataclass(frozen=True)
class StudyQuery:
    """What a researcher asks for: experiments (None: the sessions without an
    experimentId; empty: every experiment it may see), and for exports the
    sessions' createdAt range [start, end) and the format."""

    experiments: tuple[str | None, ...] = ()
    start: datetime | None = None
    end: datetime | None = None
    format: str = "zip"
    table: str | None = None


def parse_query(args, *, export: bool) -> StudyQuery:
    """A researcher function's query string (a werkzeug MultiDict); 400 for anything
    unknown, repeated where it may not be, or malformed."""
    allowed = {"experimentId", "from", "to", "format", "table"} if export else {"experimentId"}
    unknown = sorted(set(args) - allowed)
    if unknown:
        raise InvalidArgument(f"Unknown query parameter {unknown[0]!r}; known: {', '.join(sorted(allowed))}.")
    for name in allowed - {"experimentId"}:
        if len(args.getlist(name)) > 1:
            raise InvalidArgument(f"{name} may be given once.")
    experiments = []
    for value in args.getlist("experimentId"):
        if value and not _EXPERIMENT.fullmatch(value):
            raise InvalidArgument("experimentId must be 1 to 128 of A-Z a-z 0-9 . _ - "
                                  "(or empty for the sessions without an experimentId).")
        experiments.append(value or None)
    if not export:
        return StudyQuery(tuple(experiments))
    start, end = _moment(args.get("from"), "from"), _moment(args.get("to"), "to")
    if start and end and start >= end:
        raise InvalidArgument("from must be before to.")
    format_ = args.get("format", "zip")
    if format_ not in EXPORT_FORMATS:
        raise InvalidArgument(f"format must be one of {', '.join(EXPORT_FORMATS)}.")
    table = args.get("table")
    if table is not None and format_ == "zip":
        raise InvalidArgument("table is for format=csv or jsonl; a zip holds every table.")
    if table is not None and table not in EXPORT_TABLES:
        raise InvalidArgument(f"table must be one of {', '.join(EXPORT_TABLES)}.")
    if format_ != "zip" and table is None:
        table = "responses"
    return StudyQuery(tuple(experiments), start, end, format_, table)


def _moment(value: str | None, name: str) -> datetime | None:
    """An RFC 3339 time with its offset (2026-12-01T00:00:00Z)."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value) if _RFC3339.fullmatch(value) else None
    except ValueError:
        moment = None
    if moment is None:
        raise InvalidArgument(f"{name} must be an RFC 3339 time with an offset, such as 2026-12-01T00:00:00Z.")
    return moment.astimezone(timezone.utc)


_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,6})?([Zz]|[+-]\d{2}:\d{2})")
