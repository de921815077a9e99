"""shared.web.http's body parsing, on werkzeug's own request objects (no server): the
limits are checked before parsing, and every refusal is the SPEC's error."""

import io

import flask
import pytest

from shared.core.errors import InvalidArgument, InvalidJson, PayloadTooLarge, UnsupportedMediaType
from shared.web.http import MAX_BODY_BYTES, _read_json_body

APP = flask.Flask(__name__)


def body_of(data: bytes, content_type: str | None = "application/json"):
    headers = {} if content_type is None else {"Content-Type": content_type}
    with APP.test_request_context("/", method="POST", data=data, headers=headers):
        return _read_json_body(flask.request)


def test_an_empty_body_is_an_empty_object_whatever_its_type():
    assert body_of(b"") == {}
    assert body_of(b"  \n", content_type=None) == {}


def test_json_objects_arrays_and_unicode_are_parsed():
    assert body_of('{"a": [1, 2.5, "é😀"], "b": null}'.encode()) == {"a": [1, 2.5, "é😀"], "b": None}
    assert body_of(b"[]", "application/json; charset=UTF-8") == []


@pytest.mark.parametrize("size", [MAX_BODY_BYTES + 1, 10 * MAX_BODY_BYTES])
def test_a_body_over_the_limit_is_refused_by_its_length(size):
    with pytest.raises(PayloadTooLarge) as refused:
        body_of(b"[" + b" " * (size - 2) + b"]")
    assert refused.value.status == 413 and refused.value.code == "payload_too_large"
    assert str(size) in refused.value.message


def test_a_body_at_the_limit_is_read():
    assert body_of(b"[" + b" " * (MAX_BODY_BYTES - 2) + b"]") == []


def test_a_chunked_body_without_length_is_cut_at_the_limit():
    stream = io.BytesIO(b"[" + b" " * MAX_BODY_BYTES + b"]")
    # As gunicorn hands over a chunked body: no length, the stream ends where the body does.
    with APP.test_request_context(
        "/",
        method="POST",
        input_stream=stream,
        headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    ):
        assert flask.request.content_length is None
        with pytest.raises(PayloadTooLarge) as refused:
            _read_json_body(flask.request)
    assert refused.value.message == f"The request body is over the limit of {MAX_BODY_BYTES} bytes."


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_a_body_that_is_not_declared_json_is_unsupported(content_type):
    with pytest.raises(UnsupportedMediaType) as refused:
        body_of(b"{}", content_type)
    assert refused.value.status == 415 and "application/json" in refused.value.message


def test_a_charset_other_than_utf8_is_unsupported():
    with pytest.raises(UnsupportedMediaType) as refused:
        body_of(b"{}", "application/json; charset=latin-1")
    assert refused.value.message == "Send the body as UTF-8 (got charset=latin-1)."


@pytest.mark.parametrize(
    "data, says",
    [
        (b"\xff{}", "not valid UTF-8"),
        (b"{", "not valid JSON"),
        (b"{'a': 1}", "not valid JSON"),
        (b'{"a": NaN}', "NaN is not a JSON number"),
        (b'{"a": Infinity}', "Infinity is not a JSON number"),
        (b"[-Infinity]", "-Infinity is not a JSON number"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b"[" * 70 + b"]" * 70, "nesting deeper than 64 levels"),
        (b'{"a": "x\\u0000y"}', "NUL character"),
        (b'{"\\u0000": 1}', "NUL character"),
        (b'["\\ud800"]', "lone surrogate"),
    ],
)
def test_invalid_json_is_refused_with_the_reason(data, says):
    with pytest.raises(InvalidJson) as refused:
        body_of(data)
    assert refused.value.status == 400 and refused.value.code == "invalid_json"
    assert says in refused.value.message


@pytest.mark.parametrize("literal", [b"1e999", b"-1e400"])
def test_a_number_no_json_value_can_hold_is_out_of_range(literal):
    with pytest.raises(InvalidArgument) as refused:
        body_of(b'{"data": ' + literal + b"}")
    assert refused.value.message == f"The number {literal.decode()} is out of range."
