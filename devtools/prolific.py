"""A local stand-in for Prolific's submission transition endpoint (the one server-side completion
calls, docs/operations.md#prolific-deliveries): make dev and the tests point PROLIFIC_API_URL at it,
since Prolific itself is not reachable from here. It records each call; GET /calls lists them."""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from devtools.ports import free_port

TRANSITION = re.compile(r"^/api/v1/submissions/[^/]+/transition/$")
ACCEPTED = (200, {"status": "AWAITING REVIEW"})


@dataclass
class ProlificStandIn:
    """Prolific's transition endpoint on 127.0.0.1. A call with another path is 404; one without
    `Authorization: Token <token>` is 401, as Prolific answers a wrong token. The tests may set
    `answers` (taken in order, then `default`), `down` (connections closed unanswered) and `delay`."""

    token: str = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)
    port: int = field(default_factory=free_port)
    calls: list[dict[str, Any]] = field(default_factory=list)
    answers: list[tuple[int, dict]] = field(default_factory=list)
    default: tuple[int, dict] = ACCEPTED
    down: bool = False
    delay: float = 0.0

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), _handler(self))
        self.server.daemon_threads = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ProlificStandIn:
        threading.Thread(target=self.server.serve_forever, name="prolific-stand-in", daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def reset(self) -> None:
        with self.lock:
            self.calls.clear()
            self.answers.clear()
        self.default, self.down, self.delay = ACCEPTED, False, 0.0

    def answer(self, path: str, authorization: str | None, content_type: str | None, body: Any) -> tuple[int, dict]:
        """What a POST is answered, recorded first when it reaches the endpoint."""
        if not TRANSITION.match(path):
            return 404, {"error": {"title": "Not found"}}
        with self.lock:
            self.calls.append(
                {"path": path, "authorization": authorization, "content_type": content_type, "body": body}
            )
            if authorization != f"Token {self.token}":
                return 401, {"error": {"title": "Invalid token."}}
            return self.answers.pop(0) if self.answers else self.default

    def listing(self) -> list[dict[str, Any]]:
        """GET /calls: each call's path and body, and whether its token was right (never the token)."""
        with self.lock:
            return [
                {"path": c["path"], "body": c["body"], "tokenAccepted": c["authorization"] == f"Token {self.token}"}
                for c in self.calls
            ]


def _handler(stand_in: ProlificStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if stand_in.down:
                self.close_connection = True
                self.connection.close()
                return
            if stand_in.delay:
                time.sleep(stand_in.delay)
            try:
                document = json.loads(body)
            except ValueError:
                self._send(400, {"error": {"title": "The body is not JSON."}})
                return
            self._send(
                *stand_in.answer(
                    self.path, self.headers.get("Authorization"), self.headers.get("Content-Type"), document
                )
            )

        def do_GET(self) -> None:
            if self.path == "/calls":
                self._send(200, stand_in.listing())
            else:
                self._send(404, {"error": {"title": "Not found"}})

        def _send(self, status: int, document: Any) -> None:
            payload = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *_args: Any) -> None:
            pass

    return Handler
