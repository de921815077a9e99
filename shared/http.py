"""What every HTTP function does the same way: CORS, methods, size and type
limits, JSON in and out, and the one mapping from domain errors to answers.

    @functions_framework.http
    @endpoint("POST")
    def create_session(request, body): ...   # returns (status, dict)
"""

from __future__ import annotations

import functools
import json
import math
from typing import Any, Callable

import flask

from shared import config
from shared.config import ConfigError
from shared.encodings import compact_json
from shared.errors import (
    DependencyUnavailable,
    InvalidArgument,
    InvalidJson,
    MethodNotAllowed,
    PayloadTooLarge,
    PermissionDenied,
    ServiceError,
    Unavailable,
    UnsupportedMediaType,
)
from shared.logs import get_logger, reset_trace, set_trace

log = get_logger("http")

MAX_BODY_BYTES = 256 * 1024
ALLOWED_HEADERS = "Authorization, Content-Type, X-Guest-Key"
PREFLIGHT_MAX_AGE = "3600"

Handler = Callable[[flask.Request, Any], "tuple[int, dict]"]


def json_response(status: int, body: dict, headers: dict[str, str] | None = None) -> flask.Response:
    response = flask.Response(
        compact_json(body),
        status=status,
        mimetype="application/json",
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def error_response(error: ServiceError) -> flask.Response:
    return json_response(error.status, {"error": {"code": error.code, "message": error.message}}, error.headers())


def _granted_origin(request: flask.Request) -> str | None:
    origin = request.headers.get("Origin")
    if not origin:
        return None
    allowed = config.allowed_origins()
    return origin if (origin.rstrip("/") in allowed or "*" in allowed) else None


def _read_json_body(request: flask.Request) -> Any:
    """The request's JSON document ({} for an empty body); limits checked before parsing."""
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"The request body is {request.content_length} bytes; the limit is {MAX_BODY_BYTES}.")
    raw = _read_at_most(request.stream, MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"The request body is over the limit of {MAX_BODY_BYTES} bytes.")
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
        document = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
        _check_text(document)
    except UnicodeDecodeError:
        raise InvalidJson("The request body is not valid UTF-8.") from None
    except RecursionError:
        raise InvalidJson("The request body is nested too deeply.") from None
    except ValueError as error:
        raise InvalidJson(f"The request body is not valid JSON: {error}.") from None
    return document


def _read_at_most(stream, limit: int) -> bytes:
    """Read up to `limit` bytes; a chunked body arrives in several reads."""
    parts, size = [], 0
    while size < limit:
        part = stream.read(limit - size)
        if not part:
            break
        parts.append(part)
        size += len(part)
    return b"".join(parts)


def _reject_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(literal: str) -> float:
    value = float(literal)
    if math.isinf(value):
        # Valid JSON, but no JSON value can hold it once parsed (and PostgreSQL refuses Infinity).
        raise InvalidArgument(f"The number {literal[:40]} is out of range.")
    return value


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


def endpoint(*methods: str) -> Callable[[Handler], Callable[[flask.Request], flask.Response]]:
    """Wrap a handler `(request, body) -> (status, dict)` as a functions-framework HTTP function."""
    allow = tuple(methods) + ("OPTIONS",)

    def decorate(handler: Handler) -> Callable[[flask.Request], flask.Response]:
        @functools.wraps(handler)
        def serve(request: flask.Request) -> flask.Response:
            token = set_trace(request.headers.get("X-Cloud-Trace-Context"))
            try:
                response = _serve(handler, request, methods, allow)
            finally:
                reset_trace(token)
            return response

        return serve

    return decorate


def _serve(handler: Handler, request: flask.Request, methods: tuple[str, ...], allow: tuple[str, ...]) -> flask.Response:
    origin = None
    try:
        origin = _granted_origin(request)
        if request.method == "OPTIONS":
            response = _preflight(origin, allow)
        elif request.method not in methods:
            raise MethodNotAllowed(f"{request.method} is not allowed here; use {' or '.join(methods)}.", allow)
        else:
            body = _read_json_body(request) if request.method in ("POST", "PUT", "PATCH") else None
            status, payload = _handle(handler, request, body)
            response = json_response(status, payload)
    except ServiceError as error:
        if error.status >= 500:
            log.warning("%s %s answered %s: %s", request.method, request.path, error.code, error.message)
        response = error_response(error)
    except ConfigError as error:
        log.error("configuration error: %s", error)
        response = error_response(ServiceError("The service is misconfigured; see its logs."))
    except Exception:  # noqa: BLE001 - the last line of defence: log it, never show it
        log.exception("unhandled error in %s %s", request.method, request.path)
        response = error_response(ServiceError("Something went wrong on our side; see the service logs."))
    if origin:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Vary"] = "Origin"
        # A page on another origin may read how long a 503 asks it to wait.
        response.headers["Access-Control-Expose-Headers"] = "Retry-After"
    return response


def _handle(handler: Handler, request: flask.Request, body: Any) -> tuple[int, dict]:
    """The handler's answer; a dependency that is down answers 503 unavailable."""
    try:
        return handler(request, body)
    except DependencyUnavailable as error:
        raise Unavailable(error.message) from error


def _preflight(origin: str | None, allow: tuple[str, ...]) -> flask.Response:
    if origin is None:
        raise PermissionDenied("This origin is not allowed to call the API (see ALLOWED_ORIGINS).")
    response = flask.Response(status=204, mimetype=None)
    response.headers["Access-Control-Allow-Methods"] = ", ".join(allow)
    response.headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
    response.headers["Access-Control-Max-Age"] = PREFLIGHT_MAX_AGE
    return response
