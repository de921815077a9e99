"""Request bodies and researchers' query strings; a bad one becomes 400 invalid_argument.
The pydantic models are imported on first use (docs/design/cold-start.md)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from shared.core.errors import InvalidArgument

if TYPE_CHECKING:
    from pydantic import ValidationError

    from shared.web.bodies import (
        Body,
    )

# The names of shared.web.bodies that this module gives (__getattr__).
BODIES = (
    "Body",
    "ExperimentId",
    "NewSession",
    "NewResponse",
    "NewResponses",
    "ResponseItem",
    "Registration",
    "NewClaimCode",
    "UploadTicketRequest",
    "VisitorToErase",
)


def __getattr__(name: str) -> Any:
    """A body model of shared.web.bodies, imported (with pydantic) the first time one is asked for."""
    if name in BODIES:
        from shared.web import bodies

        value = globals()[name] = getattr(bodies, name)  # kept: the next lookup is a plain one
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


B = TypeVar("B", bound="Body")


def parse(model: type[B], document: Any) -> B:
    """Validate a request body against a model (models.NewSession and the like)."""
    if not isinstance(document, dict):
        raise InvalidArgument("The request body must be a JSON object.")
    from pydantic import ValidationError  # loaded with the model: a lookup

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
            message = message[len("Value error, ") :]
        problems.append(f"{field}: {message}")
    return "; ".join(problems)


# Researcher functions' query strings (docs/researchers.md) -----------------------------------

EXPORT_FORMATS = ("zip", "csv", "jsonl")
EXPORT_TABLES = ("responses", "sessions", "visitors", "uploads")
# export_data's yes-or-no parameters (`true` or `false`, false when absent).
BOOLEANS = ("includeTest", "participantIds")
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
    include_test: bool = False  # researchers' test runs (SPEC §14.3) exported too
    participant_ids: bool = False  # platform participant ids exported (SPEC §14.7)


def parse_query(args, *, export: bool) -> StudyQuery:
    """A researcher function's query string (a werkzeug MultiDict); 400 for anything
    unknown, repeated where it may not be, or malformed."""
    allowed = {"experimentId", "from", "to", "format", "table", *BOOLEANS} if export else {"experimentId"}
    unknown = sorted(set(args) - allowed)
    if unknown:
        raise InvalidArgument(f"Unknown query parameter {unknown[0]!r}; known: {', '.join(sorted(allowed))}.")
    for name in allowed - {"experimentId"}:
        if len(args.getlist(name)) > 1:
            raise InvalidArgument(f"{name} may be given once.")
    experiments = []
    for value in args.getlist("experimentId"):
        if value and not _EXPERIMENT.fullmatch(value):
            raise InvalidArgument(
                "experimentId must be 1 to 128 of A-Z a-z 0-9 . _ - "
                "(or empty for the sessions without an experimentId)."
            )
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
    include_test, participant_ids = (_boolean(args.get(name), name) for name in BOOLEANS)
    if participant_ids and table not in (None, "sessions"):
        raise InvalidArgument("participantIds is for the zip and table=sessions, which carry the participant ids.")
    return StudyQuery(tuple(experiments), start, end, format_, table, include_test, participant_ids)


def _boolean(value: str | None, name: str) -> bool:
    if value is None:
        return False
    if value not in ("true", "false"):
        raise InvalidArgument(f"{name} must be true or false.")
    return value == "true"


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
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+14:00 is before year 1 in UTC, 9999-12-31T23:59:59-14:00 after 9999
        raise InvalidArgument(f"{name} is out of range: it must be between years 1 and 9999 in UTC.") from None


_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,6})?([Zz]|[+-]\d{2}:\d{2})")
