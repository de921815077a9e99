"""The functions in process: functions-framework's own app for each target
(create_app(target, source="main.py"), as `functions-framework --target` builds
it) called through Flask's test client, against the session's real PostgreSQL
and Auth emulator. No HTTP server: the rules of each function, one request at a
time, fast. Serving, concurrency and faults stay end-to-end (tests/e2e, faults)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from functools import cache

import pytest
from functions_framework import create_app

from devtools.stack import ROOT
from tests.support import request_headers


@cache
def _app(target: str):
    return create_app(target=target, source=str(ROOT / "main.py"))


class Answer:
    """A test client's response with the part of requests.Response the tests read."""

    def __init__(self, response):
        self.status_code = response.status_code
        self.headers = response.headers
        self.content = response.get_data()
        self.text = response.get_data(as_text=True)

    def json(self):
        return json.loads(self.text)


class InProcessApi:
    """tests.support.Api's interface, served in process by each function's own app."""

    def post(
        self,
        function: str,
        body=None,
        *,
        guest: str | None = None,
        token: str | None = None,
        headers: dict | None = None,
        data=None,
    ) -> Answer:
        client = _app(function).test_client()
        if data is None and body is not None:
            data, headers = json.dumps(body), {"Content-Type": "application/json", **(headers or {})}
        return Answer(client.post("/", data=data, headers=request_headers(guest, token, headers)))

    def get(
        self, function: str, *, guest: str | None = None, token: str | None = None, headers: dict | None = None
    ) -> Answer:
        return Answer(_app(function).test_client().get("/", headers=request_headers(guest, token, headers)))

    @contextlib.contextmanager
    def stream(
        self, function: str, *, guest: str | None = None, token: str | None = None, headers: dict | None = None
    ) -> Iterator:
        """GET with the body left unread: the test client's response, whose `response` yields
        the body's chunks as the app makes them; closed when the block ends (as a server
        closes it when the body is sent or the client goes away)."""
        response = _app(function).test_client().get("/", headers=request_headers(guest, token, headers), buffered=False)
        try:
            yield response
        finally:
            response.close()


@pytest.fixture
def api(stack, db, monkeypatch) -> InProcessApi:
    """The functions with the stack's settings, in this process (overrides tests/conftest.py's api)."""
    for name, value in stack.env().items():
        if name != "FUNCTIONS_URL":
            monkeypatch.setenv(name, value)
    return InProcessApi()
