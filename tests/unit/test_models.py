"""The request bodies' rules (shared.web.models, pydantic): strict types, unknown fields
refused, limits at their exact boundary, and messages that name the field."""

import uuid

import pytest

from shared.core.errors import InvalidArgument
from shared.web.limits import DISPLAY_NAME_MAX, MAX_DATA_BYTES, MAX_LEVEL, MAX_METADATA_BYTES, encoded_size
from shared.web.models import NewResponse, NewSession, Registration, parse

SESSION = "3f0c8a4e-5b7d-4c1e-9a2b-6d8e0f1a2b3c"


def refused(model, document) -> str:
    with pytest.raises(InvalidArgument) as error:
        parse(model, document)
    assert error.value.status == 400 and error.value.code == "invalid_argument"
    return error.value.message


@pytest.mark.parametrize("document", [[], "x", 1, None, True])
def test_a_body_must_be_an_object(document):
    assert refused(NewSession, document) == "The request body must be a JSON object."


def test_an_empty_new_session_is_valid():
    assert parse(NewSession, {}) == NewSession(sessionId=None, experimentId=None, metadata=None)


def test_session_ids_are_uuids_in_any_case():
    assert parse(NewSession, {"sessionId": SESSION.upper()}).sessionId == uuid.UUID(SESSION)


@pytest.mark.parametrize(
    "value, says",
    [
        ("not-a-uuid", "sessionId: must be a UUID such as"),
        (12, "sessionId: must be a UUID string"),
        ({"id": SESSION}, "sessionId: must be a UUID string"),
    ],
)
def test_a_bad_session_id_is_named(value, says):
    assert refused(NewSession, {"sessionId": value}).startswith(says)


def test_unknown_fields_are_named_not_ignored():
    assert refused(NewSession, {"sessionID": SESSION}) == "sessionID: is not a known field"


@pytest.mark.parametrize("experiment", ["a", "A.b-c_9", "x" * 128])
def test_experiment_ids_within_the_pattern_and_length(experiment):
    assert parse(NewSession, {"experimentId": experiment}).experimentId == experiment


@pytest.mark.parametrize("experiment", ["", "x" * 129, "has space", "slash/no", "é", 5])
def test_experiment_ids_outside_them_are_refused(experiment):
    assert refused(NewSession, {"experimentId": experiment}).startswith("experimentId: ")


def test_metadata_is_limited_by_its_encoded_size_to_the_byte():
    fits = {"k": "x" * (MAX_METADATA_BYTES - len('{"k":""}'))}
    assert encoded_size(fits) == MAX_METADATA_BYTES
    assert parse(NewSession, {"metadata": fits}).metadata == fits
    over = {"k": fits["k"] + "x"}
    assert (
        refused(NewSession, {"metadata": over})
        == f"metadata: must be at most {MAX_METADATA_BYTES} bytes encoded as JSON"
    )
    assert refused(NewSession, {"metadata": ["not", "an", "object"]}).startswith("metadata: ")


def test_a_response_needs_its_session_and_its_data():
    assert refused(NewResponse, {"data": 1}).startswith("sessionId: ")
    assert refused(NewResponse, {"sessionId": None, "data": 1}) == (
        "sessionId: is required (the sessionId that create_session returned)"
    )
    assert refused(NewResponse, {"sessionId": SESSION}) == "data: Field required"
    assert parse(NewResponse, {"sessionId": SESSION, "data": None}).data is None


@pytest.mark.parametrize("level", [0, 1, MAX_LEVEL])
def test_levels_from_zero_to_postgresqls_integer(level):
    assert parse(NewResponse, {"sessionId": SESSION, "data": 1, "level": level}).level == level


@pytest.mark.parametrize("level", [-1, MAX_LEVEL + 1, "5", 1.5, True])
def test_levels_outside_or_of_another_type_are_refused(level):
    assert refused(NewResponse, {"sessionId": SESSION, "data": 1, "level": level}).startswith("level: ")


def test_data_is_limited_by_its_encoded_size_to_the_byte():
    fits = "x" * (MAX_DATA_BYTES - 2)
    assert parse(NewResponse, {"sessionId": SESSION, "data": fits}).data == fits
    assert refused(NewResponse, {"sessionId": SESSION, "data": fits + "é"}) == (
        f"data: must be at most {MAX_DATA_BYTES} bytes encoded as JSON"
    )


def test_several_problems_are_reported_together():
    message = refused(NewResponse, {"sessionId": "x", "level": -1, "data": 1, "extra": 2})
    assert message.count("; ") == 2 and "extra: is not a known field" in message


@pytest.mark.parametrize("name", ["Ada", "A" * DISPLAY_NAME_MAX, "Zoë 😀"])
def test_display_names(name):
    assert parse(Registration, {"displayName": name}).displayName == name


@pytest.mark.parametrize(
    "name, says",
    [
        ("", "displayName: String should have at least 1 character"),
        ("A" * (DISPLAY_NAME_MAX + 1), f"displayName: String should have at most {DISPLAY_NAME_MAX} characters"),
        ("   ", "displayName: must not be blank"),
        ("Ada\nLovelace", "displayName: must not contain control characters (newlines, tabs, ...)"),
        ("tab\there", "displayName: must not contain control characters (newlines, tabs, ...)"),
        (42, "displayName: Input should be a valid string"),
    ],
)
def test_bad_display_names_are_named(name, says):
    assert refused(Registration, {"displayName": name}) == says
