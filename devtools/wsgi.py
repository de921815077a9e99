"""The one way the dev server's own WSGI apps (devtools/serve.py, devtools/firebase_storage.py)
answer a request: a whole body with its length, never cached."""

from __future__ import annotations

from http import HTTPStatus


def answer(start_response, status: int, body: bytes, content_type: str = "application/json") -> list[bytes]:
    start_response(
        f"{status} {HTTPStatus(status).phrase}",
        [("Content-Type", content_type), ("Content-Length", str(len(body))), ("Cache-Control", "no-store")],
    )
    return [body]
