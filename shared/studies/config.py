"""An experiment's configuration (SPEC §14, table `experiments`): the document researchers set,
validated once here and read by admission, completion, statistics and the commands."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import quote, urlsplit

from pydantic import Field, StrictBool, StrictInt, StrictStr, model_validator

from shared.web.bodies import Body, ExperimentId

Name = Annotated[StrictStr, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]
PLATFORMS = ("none", "prolific", "sona", "mturk")
# Where a Prolific participant is sent with a completion code (SPEC §14.4).
PROLIFIC_COMPLETE_URL = "https://app.prolific.com/submissions/complete?cc={code}"
REDIRECT_FIELDS = ("code", "outcome", "sessionId", "visitorNumber")


class Condition(Body):
    name: Name
    quota: Annotated[StrictInt, Field(ge=1)] | None = None


class Outcome(Body):
    code: Annotated[StrictStr, Field(min_length=1, max_length=64)] | None = None
    serverCode: Annotated[StrictStr, Field(min_length=1, max_length=64)] | None = None  # prolific, server side
    creditUrl: Annotated[StrictStr, Field(min_length=1, max_length=2048)] | None = None  # sona


class ExperimentConfig(Body):
    experimentId: ExperimentId
    active: StrictBool = True
    maxParticipants: Annotated[StrictInt, Field(ge=0)] | None = None
    leaseMinutes: Annotated[StrictInt, Field(ge=1, le=10080)] = 60
    conditions: Annotated[list[Condition], Field(max_length=50, default_factory=list)]
    platform: Literal["none", "prolific", "sona", "mturk"] = "none"
    allowRepeat: StrictBool = False
    outcomes: Annotated[dict[Name, Outcome], Field(default_factory=dict)]
    redirectUrl: Annotated[StrictStr, Field(max_length=2048)] | None = None
    prolificServerSide: StrictBool = False

    @model_validator(mode="after")
    def _fits_its_platform(self) -> ExperimentConfig:
        names = [c.name for c in self.conditions]
        if len(set(names)) != len(names):
            raise ValueError("conditions: each name may appear once")
        if "excluded" in self.outcomes:
            raise ValueError("outcomes: excluded is set by researchers only, it is not a participant's outcome")
        if self.redirectUrl is not None:
            if self.platform != "none":
                raise ValueError(f"redirectUrl is for platform none; {self.platform} has its own completion URL")
            _check_template(self.redirectUrl)
        if self.prolificServerSide and self.platform != "prolific":
            raise ValueError("prolificServerSide is for platform prolific")
        for name, outcome in self.outcomes.items():
            if outcome.serverCode is not None and not self.prolificServerSide:
                raise ValueError(f"outcomes.{name}.serverCode is for platform prolific with prolificServerSide")
            if outcome.creditUrl is not None:
                if self.platform != "sona":
                    raise ValueError(f"outcomes.{name}.creditUrl is for platform sona")
                _check_https(outcome.creditUrl, f"outcomes.{name}.creditUrl")
                if "{participantId}" not in outcome.creditUrl:
                    raise ValueError(f"outcomes.{name}.creditUrl must contain {{participantId}} (the survey code)")
            if self.platform == "sona" and outcome.code is not None:
                raise ValueError(f"outcomes.{name}.code: SONA grants credit through creditUrl, not a code")
            if self.platform == "mturk" and outcome.code is not None:
                raise ValueError(f"outcomes.{name}.code: MTurk takes the outcome in its submit form, not a code")
        return self

    def condition_names(self) -> list[str]:
        return [c.name for c in self.conditions]

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def _check_https(url: str, field: str) -> None:
    parts = urlsplit(url.replace("{", "").replace("}", ""))
    if parts.scheme != "https" or not parts.netloc:
        raise ValueError(f"{field} must be an https URL")


def _check_template(template: str) -> None:
    _check_https(template, "redirectUrl")
    try:
        template.format(**dict.fromkeys(REDIRECT_FIELDS, ""))
    except (KeyError, IndexError, ValueError):
        raise ValueError(
            "redirectUrl may use only {code}, {outcome}, {sessionId} and {visitorNumber} (write {{ for a brace)"
        ) from None


def fill(template: str, **values: Any) -> str:
    """A URL template with each value percent-encoded (None becomes empty)."""
    return template.format(**{k: quote("" if v is None else str(v), safe="") for k, v in values.items()})


def parse_config(document: Any) -> ExperimentConfig:
    """A configuration from a request or a file; InvalidArgument (400) naming what is wrong."""
    from shared.web.models import parse

    return parse(ExperimentConfig, document)
