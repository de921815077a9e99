"""What every HTTP function does the same way: CORS, methods, size and type limits, JSON in
and out, and the one mapping from domain errors to answers (docs/design/http.md). A handler is
served by `endpoint` with its row's method and App Check (functions.FUNCTIONS)."""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import flask

from shared.core import config
from shared.core.config import ConfigError
from shared.core.encodings import compact_json
from shared.core.errors import (
    DependencyUnavailable,
    InvalidArgument,
    InvalidJson,
    MethodNotAllowed,
    PermissionDenied,
    ServiceError,
    Unavailable,
    UnsupportedMediaType,
)
from shared.core.logs import get_logger, reset_trace, set_trace
from shared.web import app_check as app_check_module
from shared.web import reading

log = get_logger("http")

MAX_BODY_BYTES = 256 * 1024
ALLOWED_HEADERS = "Authorization, Content-Type, X-Guest-Key, X-Anonymous-Token, X-Firebase-AppCheck"
PREFLIGHT_MAX_AGE = "3600"


@dataclass(frozen=True)
class Streamed:
    """A handler's answer whose body is sent while it is made (`chunks` yields bytes); do every
    check before the first `yield`, since the status cannot change after it (docs/design/exports.md)."""

    chunks: Iterable[bytes]
    mimetype: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)
    status: int = 200


Handler = Callable[[flask.Request, Any], "tuple[int, dict] | Streamed"]


def json_response(status: int, body: dict, headers: dict[str, str] | None = None) -> flask.Response:
    response = flask.Response(
        compact_json(body),
        status=status,
        mimetype="application/json",
    )
    return _with_headers(response, headers)


def _with_headers(response: flask.Response, headers: Mapping[str, str] | None) -> flask.Response:
    """The headers of every answer (never cached, never sniffed), then the answer's own."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def error_response(error: ServiceError) -> flask.Response:
    body = {"code": error.code, "message": error.message, **error.fields()}
    return json_response(error.status, {"error": body}, error.headers())


# The error codes of the errors functions-framework answers itself (outside `endpoint`).
_FRAMEWORK_CODES = {
    400: "invalid_argument",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def framework_error(error) -> flask.Response:
    """An error that functions-framework or Flask raises before the product's code runs - above
    all the 400 of a request to the storage trigger that is not a CloudEvent, whose HTML page
    echoes the request's headers and body back - in the documented JSON shape, without any of the
    request in it. main.py registers it with functions_framework.errorhandler."""
    status = error.code if isinstance(error.code, int) and 400 <= error.code < 500 else 500
    code = _FRAMEWORK_CODES.get(status, "internal" if status == 500 else "invalid_argument")
    if status == 400:
        message = (
            "Not a CloudEvent: a storage event needs the ce-id, ce-source, ce-type and ce-specversion "
            "headers (binary mode) or a structured application/cloudevents+json body."
        )
    else:
        message = f"{error.name}."
    log.info("answered %s from the framework: %s", status, error.name)
    return json_response(status, {"error": {"code": code, "message": message}})


def _granted_origin(request: flask.Request) -> str | None:
    origin = request.headers.get("Origin")
    if not origin:
        return None
    allowed = config.allowed_origins()
    if origin.rstrip("/") in allowed or "*" in allowed:
        return origin
    _log_refused_origin(origin)
    return None


# The origins this instance has refused and logged: a study's page on an origin left out of
# ALLOWED_ORIGINS fails in the browser with a bare "network error", so the log says once per
# origin which setting to change (bounded: a caller may send any Origin it likes).
_refused_origins: set[str] = set()
_REFUSED_ORIGINS_KEPT = 256


def _log_refused_origin(origin: str) -> None:
    origin = origin[:200]
    if origin in _refused_origins or len(_refused_origins) >= _REFUSED_ORIGINS_KEPT:
        return
    _refused_origins.add(origin)
    log.warning(
        "refused a browser's requests from origin %s: add it to ALLOWED_ORIGINS (comma-separated) "
        "to let its pages call the API (logged once per origin and instance)",
        origin,
        extra={"fields": {"origin": origin}},
    )


def _read_json_body(request: flask.Request) -> Any:
    """The request's JSON document ({} for an empty body); limits checked before parsing."""
    raw = reading.read_body(request, MAX_BODY_BYTES)
    if not raw.strip():
        return {}
    if request.mimetype != "application/json":
        raise UnsupportedMediaType(
            f"Send the body as JSON with Content-Type: application/json (got {request.mimetype or 'none'})."
        )
    charset = request.mimetype_params.get("charset", "utf-8").lower()
    if charset not in ("utf-8", "utf8"):
        raise UnsupportedMediaType(f"Send the body as UTF-8 (got charset={charset}).")
    try:
        text = raw.decode("utf-8")
        document = _DECODER.decode(text)
        _check_text(document)
    except UnicodeDecodeError:
        raise InvalidJson("The request body is not valid UTF-8.") from None
    except RecursionError:
        raise InvalidJson("The request body is nested too deeply.") from None
    except ValueError as error:
        raise InvalidJson(f"The request body is not valid JSON: {error}.") from None
    return document


def _reject_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(literal: str) -> float:
    value = float(literal)
    if math.isinf(value):
        # Valid JSON, but no JSON value can hold it once parsed (and PostgreSQL refuses Infinity).
        raise InvalidArgument(f"The number {literal[:40]} is out of range.")
    return value


# One decoder for every request: json.loads with hooks would build a new one each time.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)


def _check_text(value: Any, depth: int = 0) -> None:
    """Refuse what PostgreSQL's JSONB cannot store: NUL characters and lone surrogates."""
    if depth > 64:
        raise ValueError("nesting deeper than 64 levels")
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("strings must not contain the NUL character (\\u0000)")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("strings must be valid Unicode (a lone surrogate was sent)") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key, depth + 1)
            _check_text(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_text(item, depth + 1)


def endpoint(*methods: str, app_check: bool = False) -> Callable[[Handler], Callable[[flask.Request], flask.Response]]:
    """Wrap a handler `(request, body) -> (status, dict) | Streamed` as a functions-framework HTTP
    function; app_check=True for the visitor-facing ones (shared.web.app_check, docs/operations.md).
    Called by functions.Function.entry_point with the function's row."""
    allow = (*tuple(methods), "OPTIONS")

    def decorate(handler: Handler) -> Callable[[flask.Request], flask.Response]:
        @functools.wraps(handler)
        def serve(request: flask.Request) -> flask.Response:
            token = set_trace(request.headers.get("X-Cloud-Trace-Context"))
            try:
                response = _serve(handler, request, methods, allow, app_check)
            finally:
                reset_trace(token)
            return response

        serve.app_check = app_check  # type: ignore[attr-defined]  # what main.py serves, as its row says (tests/unit/test_function_names.py)
        return serve

    return decorate


def _serve(
    handler: Handler, request: flask.Request, methods: tuple[str, ...], allow: tuple[str, ...], app_check: bool
) -> flask.Response:
    origin = None
    try:
        origin = _granted_origin(request)
        if request.method == "OPTIONS":
            response = _preflight(origin, allow)
        elif request.method not in methods:
            raise MethodNotAllowed(f"{request.method} is not allowed here; use {' or '.join(methods)}.", allow)
        else:
            if app_check:
                _check_app(request)
            body = _read_json_body(request) if request.method in ("POST", "PUT", "PATCH") else None
            response = _handle(handler, request, body)
    except ServiceError as error:
        if error.status >= 500:
            log.warning("%s %s answered %s: %s", request.method, request.path, error.code, error.message)
        response = error_response(error)
    except ConfigError as error:
        log.error("configuration error: %s", error)
        response = error_response(ServiceError("The service is misconfigured; see its logs."))
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        response = error_response(ServiceError("Something went wrong on our side; see the service logs."))
    if reading.finish(request, MAX_BODY_BYTES):
        # gunicorn closes the connection without reading the rest of the body: the answer must say
        # "Connection: close", or a client's keep-alive pool may send its next request into the
        # closing connection (RemoteDisconnected). gunicorn ignores a Connection header from the
        # application; its response object (whose start_response the answer is given) can be told.
        response = _closing(response)
    if origin:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Vary"] = "Origin"
        # A page on another origin may read how long a 503 asks it to wait, and a
        # download's file name.
        response.headers["Access-Control-Expose-Headers"] = "Retry-After, Content-Disposition"
    return response


class _ClosingResponse(flask.Response):
    """An answer after which the server closes the connection, and says so."""

    def __call__(self, environ, start_response):
        server_response = getattr(start_response, "__self__", None)
        force_close = getattr(server_response, "force_close", None)  # gunicorn's http.wsgi.Response
        if callable(force_close):
            force_close()
        return super().__call__(environ, start_response)


def _closing(response: flask.Response) -> flask.Response:
    closing = _ClosingResponse(response.get_data(), status=response.status, headers=response.headers)
    closing.direct_passthrough = False
    return closing


def _check_app(request: flask.Request) -> None:
    """APP_CHECK before any other work; keys out of reach answer 503 unavailable."""
    try:
        app_check_module.check_request(request)
    except DependencyUnavailable as error:
        raise Unavailable(error.message) from error


def _handle(handler: Handler, request: flask.Request, body: Any) -> flask.Response:
    """The handler's answer (a streamed one with its first chunk made); a dependency
    that is down answers 503 unavailable."""
    try:
        answer = handler(request, body)
        if isinstance(answer, Streamed):
            return _streamed_response(answer, request, getattr(handler, "__name__", "handler"))
        status, payload = answer
        return json_response(status, payload)
    except DependencyUnavailable as error:
        raise Unavailable(error.message) from error


def _streamed_response(answer: Streamed, request: flask.Request, name: str) -> flask.Response:
    """The answer with its first chunk made here, so that an error raised until then is
    answered like any handler's (see Streamed); the rest is made while it is sent."""
    chunks = iter(answer.chunks)
    try:
        first = next(chunks, b"")
    except BaseException:
        _close(chunks)
        raise
    body = _the_rest(first, chunks, name, request.headers.get("X-Cloud-Trace-Context"))
    response = flask.Response(flask.stream_with_context(body), status=answer.status, mimetype=answer.mimetype)
    return _with_headers(response, answer.headers)


class StreamEndedEarly(Exception):
    """Raised to the WSGI server when a streamed answer fails after its first chunk. The
    server (gunicorn) then closes the connection without chunked encoding's last chunk,
    which every HTTP client reports as an incomplete body (curl: "transfer closed with
    outstanding read data remaining"; requests: ChunkedEncodingError): a body that just
    ended would look complete, and a CSV has no end of its own to tell it by. It carries
    no message and no cause, so the server's own log of it quotes nothing of the data."""


def _the_rest(first: bytes, chunks: Iterator[bytes], where: str, trace_header: str | None) -> Iterator[bytes]:
    """first, then the chunks; an error ends the body there, with one log line, and
    StreamEndedEarly for the server."""
    sent = 0
    try:
        chunk = first
        while True:
            if chunk:
                yield chunk
                sent += len(chunk)
            # The request's trace was reset when the handler returned; its lines keep it.
            token = set_trace(trace_header)
            try:
                chunk = next(chunks)
            except StopIteration:
                return
            except Exception as error:
                log.error(
                    "%s: the streamed answer ended early after %d bytes (%s); the client has an incomplete body",
                    where,
                    sent,
                    _what_failed(error),
                )
                raise StreamEndedEarly() from None
            finally:
                reset_trace(token)
    finally:
        _close(chunks)


def _what_failed(error: BaseException) -> str:
    """What failed, without any message (one could quote data): the error's type and
    those it wraps, and a database error's SQLSTATE."""
    kinds: list[str] = []
    code, seen = None, error
    while seen is not None and len(kinds) < 4:
        kinds.append(type(seen).__name__)
        args = getattr(seen, "args", ())
        if code is None and args and isinstance(args[0], dict):
            code = args[0].get("C")
        seen = getattr(seen, "orig", None) or seen.__cause__  # type: ignore[assignment]
    return " from ".join(kinds) + (f", SQLSTATE {code}" if code else "")


def _close(chunks: Iterator[bytes]) -> None:
    close = getattr(chunks, "close", None)
    if close is not None:
        close()


def _preflight(origin: str | None, allow: tuple[str, ...]) -> flask.Response:
    if origin is None:
        raise PermissionDenied("This origin is not allowed to call the API (see ALLOWED_ORIGINS).")
    response = flask.Response(status=204, mimetype=None)
    response.headers["Access-Control-Allow-Methods"] = ", ".join(allow)
    response.headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
    response.headers["Access-Control-Max-Age"] = PREFLIGHT_MAX_AGE
    return response
