"""The request bodies' pydantic models. Imported through shared.web.models (models.NewSession),
which loads this module, and pydantic with it, when a body is first validated."""

from __future__ import annotations

import re
from typing import Annotated, Any
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictStr,
    field_validator,
)

from shared.web.limits import (
    CLAIM_CODE_MAX,
    DISPLAY_NAME_MAX,
    MAX_DATA_BYTES,
    MAX_LEVEL,
    MAX_METADATA_BYTES,
    MAX_VISITOR_NUMBER,
    encoded_size,
    upload_name_problem,
)

ExperimentId = Annotated[StrictStr, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._-]+$")]


class Body(BaseModel):
    # strict: "5" is not an integer, true is not a number; unknown fields are refused
    # so that a misspelt field is reported instead of silently ignored.
    # defer_build: pydantic builds a model's validator when the model is first used, not when
    # its class is made (https://docs.pydantic.dev/latest/api/config/#pydantic.config.ConfigDict.defer_build),
    # so an instance builds the one model its function validates instead of all of them. pydantic
    # (2.14) builds it under a lock: the first requests of a worker's threads, at once, each wait
    # for the one build (tests/unit/test_import_main.py).
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, defer_build=True)


# A recruitment platform's id (SPEC §14.3): what Prolific, SONA and MTurk put in a study's URL.
_PLATFORM_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
# MTurk's assignmentId while a worker previews a HIT: nobody has accepted it yet.
MTURK_PREVIEW = "ASSIGNMENT_ID_NOT_AVAILABLE"
MTURK_SUBMIT_HOSTS = ("https://www.mturk.com", "https://workersandbox.mturk.com")


def _platform_id(value: str) -> str:
    """A platform id as the study URL gave it. Its value is never quoted back: it is personal
    data, and a 400's message may be logged."""
    if _PLATFORM_ID.fullmatch(value):
        return value
    if any(mark in value for mark in "{}%$[]"):
        raise ValueError(
            "is a placeholder, not an id: the study URL was not filled in by the recruitment platform "
            "(open the study through the platform, or put an id in place of the placeholder when you try it)"
        )
    raise ValueError("must be 1 to 128 of A-Z a-z 0-9 . _ -")


PlatformId = Annotated[StrictStr, AfterValidator(_platform_id)]


class SessionParticipant(Body):
    """create_session's `participant`: the ids a recruitment platform gave (SPEC §14.3). Which
    fields an experiment's platform needs is checked against its configuration
    (shared/studies/admission.py)."""

    participantId: PlatformId  # Prolific's PROLIFIC_PID, SONA's survey code, MTurk's workerId
    studyId: PlatformId | None = None  # prolific: STUDY_ID
    submissionId: PlatformId | None = None  # prolific: SESSION_ID
    assignmentId: PlatformId | None = None  # mturk
    hitId: PlatformId | None = None  # mturk
    turkSubmitTo: StrictStr | None = None  # mturk

    @field_validator("assignmentId")
    @classmethod
    def _not_a_preview(cls, value):
        if value == MTURK_PREVIEW:
            raise ValueError(
                f"is {MTURK_PREVIEW}: this is the HIT's preview; the worker must accept the HIT before the study starts"
            )
        return value

    @field_validator("turkSubmitTo")
    @classmethod
    def _mturk_host(cls, value):
        if value is not None and value.rstrip("/") not in MTURK_SUBMIT_HOSTS:
            raise ValueError(f"must be {' or '.join(MTURK_SUBMIT_HOSTS)}")
        return value


class NewSession(Body):
    sessionId: UUID | None = None
    experimentId: ExperimentId | None = None
    metadata: dict[str, Any] | None = None
    # Studies (SPEC §14.3): the recruitment platform's ids, and a researcher's test run.
    participant: SessionParticipant | None = None
    test: StrictBool = False

    @field_validator("sessionId", mode="before")
    @classmethod
    def _uuid_text(cls, value):
        return _parse_uuid(value)

    @field_validator("metadata")
    @classmethod
    def _metadata_size(cls, value):
        return value if value is None else _at_most(value, MAX_METADATA_BYTES)


def _at_most(value, limit: int):
    """value, if it is at most `limit` bytes as compact UTF-8 JSON."""
    if encoded_size(value) > limit:
        raise ValueError(f"must be at most {limit} bytes encoded as JSON")
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


def _required_session_uuid(value):
    if value is None:
        raise ValueError("is required (the sessionId that create_session returned)")
    return _parse_uuid(value)


# A request's sessionId: required, a UUID string.
SessionId = Annotated[UUID, BeforeValidator(_required_session_uuid)]


class NewResponse(Body):
    sessionId: SessionId
    responseId: UUID | None = None
    level: Annotated[int, Field(ge=0, le=MAX_LEVEL)] | None = None
    data: Any  # required; any JSON value, null included

    @field_validator("responseId", mode="before")
    @classmethod
    def _response_uuid(cls, value):
        return _parse_uuid(value)

    @field_validator("data")
    @classmethod
    def _data_size(cls, value):
        return _at_most(value, MAX_DATA_BYTES)


# submit_response's batch form (SPEC §14.6): at most this many responses in one request.
MAX_BATCH_RESPONSES = 500


class ResponseItem(Body):
    """One response of the batch form: as NewResponse without its sessionId, with the
    responseId required, so that a batch sent again stores none of its items twice."""

    responseId: UUID
    level: Annotated[int, Field(ge=0, le=MAX_LEVEL)] | None = None
    data: Any  # required; any JSON value, null included

    @field_validator("responseId", mode="before")
    @classmethod
    def _response_uuid(cls, value):
        if value is None:
            raise ValueError("is required in each item of responses (a new UUID per response, the same on a retry)")
        return _parse_uuid(value)

    @field_validator("data")
    @classmethod
    def _data_size(cls, value):
        return _at_most(value, MAX_DATA_BYTES)


class NewResponses(Body):
    """submit_response's batch form: 1 to MAX_BATCH_RESPONSES responses of one session."""

    sessionId: SessionId
    responses: Annotated[list[ResponseItem], Field(min_length=1, max_length=MAX_BATCH_RESPONSES)]


class Registration(Body):
    displayName: Annotated[StrictStr, Field(min_length=1, max_length=DISPLAY_NAME_MAX)] | None = None
    # A claim code from create_claim_code (docs/api.md); its characters are checked by shared.visitors.claim_codes.
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


class UploadTicketRequest(Body):
    """create_upload_ticket's body: the session to upload into, and the file's name in it."""

    sessionId: SessionId
    name: StrictStr

    @field_validator("name")
    @classmethod
    def _one_segment(cls, value):
        problem = upload_name_problem(value)
        if problem:
            raise ValueError(problem)
        return value


class VisitorToErase(Body):
    """erase_visitor's body: the number of the visitor to erase."""

    visitorNumber: Annotated[int, Field(ge=1, le=MAX_VISITOR_NUMBER)]
