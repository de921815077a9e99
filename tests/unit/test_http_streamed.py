"""shared.web.http's streamed answers (Streamed), through a Flask app and its test client
(no server): each chunk is made only when the one before has been read, an error
before the first chunk is answered in the SPEC's error shape, an error after it ends
the body there with one log line, and the chunks are closed however the body ends."""

from __future__ import annotations

import json
import logging

import flask
import pytest

from shared.core.errors import DependencyUnavailable, GuestClaimed, NotFound
from shared.web.http import Streamed, StreamEndedEarly, endpoint

ORIGIN = "https://study.example.org"


class Chunks:
    """A generator's life, recorded: what it made, and whether it was closed."""

    def __init__(self, parts: list, fail_at: int | None = None, error: Exception | None = None):
        self.parts, self.fail_at, self.error = parts, fail_at, error
        self.made: list[bytes] = []
        self.closed = False

    def __iter__(self):
        try:
            for index, part in enumerate(self.parts):
                if index == self.fail_at:
                    raise self.error
                self.made.append(part)
                yield part
        finally:
            self.closed = True


def app_for(handler) -> flask.Flask:
    app = flask.Flask(__name__)
    serve = endpoint("GET")(handler)
    app.add_url_rule("/", "serve", lambda: serve(flask.request), methods=["GET", "POST", "OPTIONS"])
    return app


@pytest.fixture
def get():
    """get(handler, **options): the test client's answer, its body left unread; closed at
    the end of the test at the latest (an open one keeps Flask's contexts pushed)."""
    answers = []

    def get(handler, **options):
        answers.append(app_for(handler).test_client().get("/", buffered=False, **options))
        return answers[-1]

    yield get
    for answer in answers:
        answer.close()


@pytest.fixture(autouse=True)
def settings(monkeypatch):
    monkeypatch.setenv("ALLOWED_ORIGINS", ORIGIN)
    monkeypatch.setenv("RETRY_AFTER_SECONDS", "3")


def test_each_chunk_is_made_when_the_one_before_is_read(get):
    chunks = Chunks([b'{"a":', b"[1,", b"2]}"])

    def handler(request, _body):
        return Streamed(chunks, headers={"Content-Disposition": 'attachment; filename="x.json"'})

    response = get(handler, headers={"Origin": ORIGIN})
    # The answer exists with its first chunk made, and no more.
    assert chunks.made == [b'{"a":']
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert response.headers["Content-Disposition"] == 'attachment; filename="x.json"'
    assert response.headers["Cache-Control"] == "no-store" and response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "Content-Length" not in response.headers
    body = iter(response.response)
    assert next(body) == b'{"a":' and chunks.made == [b'{"a":']
    assert next(body) == b"[1," and chunks.made == [b'{"a":', b"[1,"]
    assert b"".join(body) == b"2]}"
    response.close()
    assert chunks.closed


@pytest.mark.parametrize(
    "error, status, code",
    [
        (NotFound("Nothing is stored for you."), 404, "not_found"),
        (GuestClaimed("Sign in."), 403, "guest_claimed"),
        (DependencyUnavailable("Firestore is unavailable; try again shortly."), 503, "unavailable"),
        (RuntimeError("a bug, with data: secret@example.org"), 500, "internal"),
    ],
)
def test_an_error_before_the_first_chunk_is_an_error_answer(error, status, code):
    chunks = Chunks([b"{", b"}"], fail_at=0, error=error)

    response = app_for(lambda request, _body: Streamed(chunks)).test_client().get("/", headers={"Origin": ORIGIN})

    assert response.status_code == status
    assert response.get_json() == {"error": {"code": code, "message": response.get_json()["error"]["message"]}}
    assert "secret@example.org" not in response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "Content-Disposition" not in response.headers
    if status == 503:
        assert response.headers["Retry-After"] == "3"
    assert chunks.closed


def test_an_error_after_the_first_chunk_ends_the_body_there_with_one_log_line_and_cuts_it(get, lines):
    chunks = Chunks(
        [b'{"sessions":[', b'{"data":"secret@example.org"}', b"]}"],
        fail_at=2,
        error=ValueError("could not encode secret@example.org"),
    )

    def export_something(request, _body):
        return Streamed(chunks)

    response = get(export_something)
    assert response.status_code == 200
    received = []
    with pytest.raises(StreamEndedEarly) as cut:  # the server then closes without the last chunk
        for chunk in response.response:
            received.append(chunk)
    body = b"".join(received)
    response.close()
    assert str(cut.value) == "" and cut.value.__cause__ is None  # nothing of the data for the server's log

    assert body == b'{"sessions":[{"data":"secret@example.org"}'
    with pytest.raises(json.JSONDecodeError):
        json.loads(body)
    assert chunks.closed
    (line,) = [record for record in lines if record.levelno >= logging.WARNING]
    assert line.levelno == logging.ERROR
    assert line.getMessage() == (
        "export_something: the streamed answer ended early after 42 bytes (ValueError); "
        "the client has an incomplete body"
    )
    assert "secret" not in line.getMessage()


def test_a_client_that_goes_away_closes_the_chunks(get):
    chunks = Chunks([b"[", b"1", b",2", b"]"])
    response = get(lambda request, _body: Streamed(chunks))
    assert next(iter(response.response)) == b"["

    response.close()  # what the server does when the connection drops

    assert chunks.closed and chunks.made == [b"["]


def test_an_empty_body_and_plain_iterables_are_streamed_too():
    empty = app_for(lambda request, _body: Streamed(iter([]), mimetype="text/csv")).test_client().get("/")
    assert (empty.status_code, empty.get_data(), empty.mimetype) == (200, b"", "text/csv")
    listed = (
        app_for(lambda request, _body: Streamed([b"a,b\n", b"1,2\n"], mimetype="text/csv", status=201))
        .test_client()
        .get("/")
    )
    assert (listed.status_code, listed.get_data()) == (201, b"a,b\n1,2\n")


def test_methods_and_json_answers_are_as_before():
    app = app_for(lambda request, _body: (200, {"ok": True}))
    assert app.test_client().get("/").get_json() == {"ok": True}
    refused = app.test_client().post("/", json={})
    assert refused.status_code == 405 and refused.headers["Allow"] == "GET, OPTIONS"
