"""Dev only: the part of the Firebase Storage REST API the page's firebase/storage SDK speaks,
on top of the stack's Storage emulator (docs/design/emulators.md)."""

from __future__ import annotations

import email.parser
import email.policy
import json
import os
import uuid
from urllib.parse import parse_qs, quote, unquote

import requests

from devtools.wsgi import answer

PREFIX = "v0"
MAX_UPLOAD_BYTES = 32 * 1024 * 1024  # a dev stack: larger files are refused rather than held in memory


def _error(start_response, status: int, message: str):
    return answer(start_response, status, json.dumps({"error": {"code": status, "message": message}}).encode())


def _emulator() -> str:
    return os.environ.get("STORAGE_EMULATOR_HOST", "").rstrip("/")


def app(environ, start_response):
    """The WSGI app for /v0/...: PATH_INFO is /v0/b/<bucket>/o[/<object>]."""
    if not _emulator():
        return _error(start_response, 404, "No Storage emulator here (STORAGE_EMULATOR_HOST is not set).")
    # The raw URI keeps an object name's %2F encoded (PATH_INFO has it decoded).
    raw = (environ.get("RAW_URI") or environ.get("REQUEST_URI") or quote(environ.get("PATH_INFO", ""))).split("?")[0]
    parts = raw.lstrip("/").split("/", 4)  # v0, b, <bucket>, o[, <object>]
    if len(parts) < 4 or parts[:2] != [PREFIX, "b"] or parts[3] != "o":
        return _error(start_response, 404, "Not a Firebase Storage object path: /v0/b/<bucket>/o/<object>.")
    bucket = unquote(parts[2])
    name = unquote(parts[4]) if len(parts) == 5 else None
    query = parse_qs(environ.get("QUERY_STRING", ""))
    method = environ.get("REQUEST_METHOD", "GET")
    try:
        if method == "POST" and name is None:
            return _upload(environ, start_response, bucket, (query.get("name") or [None])[0])
        if method == "GET" and name:
            return _get(start_response, bucket, name, media=query.get("alt") == ["media"])
    except requests.RequestException:
        return _error(start_response, 503, "The Storage emulator is not reachable.")
    return _error(start_response, 405, "This dev adapter serves uploadBytes (POST) and getMetadata/getBytes (GET).")


def _upload(environ, start_response, bucket: str, name: str | None):
    """uploadBytes: a multipart/related body of the metadata (JSON) and the bytes."""
    if environ.get("HTTP_X_GOOG_UPLOAD_PROTOCOL") != "multipart":
        return _error(start_response, 400, "Only multipart uploads (uploadBytes) are served by this dev adapter.")
    length = int(environ.get("CONTENT_LENGTH") or 0)
    if length > MAX_UPLOAD_BYTES:
        return _error(start_response, 413, f"Uploads are limited to {MAX_UPLOAD_BYTES} bytes in dev.")
    body = environ["wsgi.input"].read(length)
    header = f"Content-Type: {environ.get('CONTENT_TYPE', '')}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(header + body)
    parts = list(message.iter_parts()) if message.is_multipart() else []
    try:
        metadata = json.loads(parts[0].get_payload(decode=True))  # type: ignore[arg-type]  # bytes: decode=True
        content: bytes = parts[1].get_payload(decode=True)  # type: ignore[assignment]
    except (IndexError, TypeError, ValueError):
        return _error(start_response, 400, "The upload is not multipart/related metadata (JSON) and bytes.")
    name = name or metadata.get("name")
    if not isinstance(name, str) or not name:
        return _error(start_response, 400, "The upload names no object (?name=).")
    resource = {"name": name, "contentType": metadata.get("contentType") or parts[1].get_content_type()}
    if isinstance(metadata.get("metadata"), dict):
        resource["metadata"] = metadata["metadata"]  # the SDK's customMetadata
    boundary = uuid.uuid4().hex
    forwarded = b"".join(
        [
            f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n".encode(),
            json.dumps(resource).encode(),
            f"\r\n--{boundary}\r\nContent-Type: {resource['contentType']}\r\n\r\n".encode(),
            content or b"",
            f"\r\n--{boundary}--\r\n".encode(),
        ]
    )
    upstream = requests.post(
        f"{_emulator()}/upload/storage/v1/b/{quote(bucket, safe='')}/o",
        params={"uploadType": "multipart"},
        data=forwarded,
        timeout=30,
        headers={"Content-Type": f"multipart/related; boundary={boundary}"},
    )
    return _relay(start_response, upstream)


def _get(start_response, bucket: str, name: str, media: bool):
    url = f"{_emulator()}/storage/v1/b/{quote(bucket, safe='')}/o/{quote(name, safe='')}"
    upstream = requests.get(url, params={"alt": "media"} if media else None, timeout=30)
    if media and upstream.ok:
        return answer(
            start_response, 200, upstream.content, upstream.headers.get("Content-Type", "application/octet-stream")
        )
    return _relay(start_response, upstream)


def _relay(start_response, upstream: requests.Response):
    """The emulator's object resource as the SDK reads it (the Firebase resource uses the same
    field names: name, bucket, generation, size, contentType, timeCreated, updated, md5Hash,
    and `metadata`, which the SDK calls customMetadata), or its error in the Firebase shape."""
    if upstream.status_code == 404:
        return _error(start_response, 404, "Not Found.")
    if not upstream.ok:
        return _error(
            start_response,
            503 if upstream.status_code >= 500 else 400,
            f"The Storage emulator answered HTTP {upstream.status_code}.",
        )
    resource = upstream.json()
    fields = (
        "name",
        "bucket",
        "generation",
        "metageneration",
        "contentType",
        "timeCreated",
        "updated",
        "size",
        "md5Hash",
        "contentEncoding",
        "contentDisposition",
        "cacheControl",
        "metadata",
    )
    return answer(start_response, 200, json.dumps({key: resource[key] for key in fields if key in resource}).encode())
