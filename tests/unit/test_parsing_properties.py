"""Properties of what the API parses (SPEC §4, §5, §10): any RFC 3339 time with any offset in range,
and any number or JSON value in a body, either parses or is refused as invalid_argument (an event:
acknowledged as Ignored); never another exception, which would be a 500 or a redelivered event."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st
from werkzeug.datastructures import MultiDict

from shared.core.errors import InvalidArgument
from shared.visitors.uploads import FINALIZED, Ignored, parse_event, parse_time
from shared.web.models import NewResponse, NewSession, VisitorToErase, parse, parse_query

SESSION = "3f0c8a4e-5b7d-4c1e-9a2b-6d8e0f1a2b3c"
ITEM = {"bucket": "b", "name": f"sessions/{SESSION}/a.png", "generation": "1700000000000001"}


@st.composite
def rfc3339(draw) -> str:
    """An RFC 3339 date-time: every field of its width, in range or not (month 00-19, hour 00-29, ...),
    with Z or an offset of up to ±23:59, and 0 to 9 fraction digits."""
    year = draw(st.integers(0, 9999))
    month, day = draw(st.integers(0, 19)), draw(st.integers(0, 39))
    hour, minute, second = draw(st.integers(0, 29)), draw(st.integers(0, 69)), draw(st.integers(0, 69))
    fraction = draw(st.text("0123456789", max_size=9))
    zone = draw(
        st.one_of(
            st.sampled_from(["Z", "z", "+00:00", "-00:00", "+14:00", "-14:00", "+23:59", "-23:59"]),
            st.builds(
                lambda sign, h, m: f"{sign}{h:02d}:{m:02d}",
                st.sampled_from("+-"),
                st.integers(0, 23),
                st.integers(0, 59),
            ),
        )
    )
    separator = draw(st.sampled_from("Tt "))
    return (
        f"{year:04d}-{month:02d}-{day:02d}{separator}{hour:02d}:{minute:02d}:{second:02d}"
        f"{'.' + fraction if fraction else ''}{zone}"
    )


EXTREMES = [
    "0001-01-01T00:00:00+14:00",
    "0001-01-01T00:00:00+00:01",
    "9999-12-31T23:59:59-14:00",
    "9999-12-31T23:59:59.999999-00:01",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
]


def _query_time(value: str) -> datetime | None:
    try:
        return parse_query(MultiDict({"from": value}), export=True).start
    except InvalidArgument:
        return None


@settings(max_examples=300)
@given(st.one_of(rfc3339(), st.sampled_from(EXTREMES)))
def test_an_export_time_parses_or_is_invalid_argument(value):
    moment = _query_time(value)
    assert moment is None or (moment.tzinfo is not None and moment.utcoffset().total_seconds() == 0)


@settings(max_examples=300)
@given(st.one_of(rfc3339(), st.sampled_from(EXTREMES)))
def test_an_event_time_parses_or_is_ignored(value):
    moment = parse_time(value)
    assert moment is None or moment.tzinfo == UTC
    try:
        event = parse_event({"type": FINALIZED, "time": value}, ITEM)
    except Ignored:
        assert moment is None
    else:
        assert event.time == moment


def test_the_extreme_offsets_are_refused_not_crashed():
    for value in ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"):
        assert _query_time(value) is None
        assert parse_time(value) is None
    assert _query_time("0001-01-01T00:00:00Z") == datetime(1, 1, 1, tzinfo=UTC)
    assert parse_time("9999-12-31T23:59:59Z") == datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)


NUMBERS = st.one_of(
    st.integers(),
    st.integers(min_value=2**31 - 3, max_value=2**64),
    st.integers(min_value=10**4290, max_value=10**4400),
    st.floats(),
    st.booleans(),
    st.none(),
    st.text(max_size=5),
)
JSON = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=40)
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=10), inner, max_size=5)),
    max_leaves=30,
)


def parses_or_is_invalid_argument(model, document) -> None:
    try:
        parse(model, document)
    except InvalidArgument:
        pass


@given(NUMBERS)
def test_a_level_parses_or_is_invalid_argument(level):
    parses_or_is_invalid_argument(NewResponse, {"sessionId": SESSION, "level": level, "data": None})


@given(NUMBERS)
def test_a_visitor_number_parses_or_is_invalid_argument(number):
    parses_or_is_invalid_argument(VisitorToErase, {"visitorNumber": number})


@given(JSON, st.integers(0, 70_000))
def test_metadata_and_data_of_any_size_parse_or_are_invalid_argument(value, padding):
    parses_or_is_invalid_argument(NewSession, {"metadata": {"v": value, "pad": "x" * padding}})
    parses_or_is_invalid_argument(NewResponse, {"sessionId": SESSION, "data": [value, "x" * padding]})
    parses_or_is_invalid_argument(NewSession, {"metadata": value})
