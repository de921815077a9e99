"""export_my_data with a Firestore emulator of the test's own, which it stops: before the
request, the answer is the ordinary 503 (and the export works again once Firestore is
back); after the first chunk, the document ends unfinished, with one log line, and the server is
told to cut the connection (StreamEndedEarly)."""

from __future__ import annotations

import json
import logging
import time

import pytest
import requests

from shared.web.http import StreamEndedEarly
from tests.inprocess.conftest import InProcessApi
from tests.support import assert_error, new_guest_key

pytestmark = pytest.mark.slow


def export(url: str, key: str) -> requests.Response:
    return requests.get(f"{url}/export_my_data", headers={"X-Guest-Key": key}, timeout=60)


def test_firestore_down_before_the_request_is_503_and_the_export_works_once_it_is_back(
    stack, db, own_firestore, functions_server
):
    server = functions_server({**stack.env(), "FIRESTORE_EMULATOR_HOST": own_firestore.host})
    key = new_guest_key()
    created = requests.post(
        f"{server.url}/create_session", json={"experimentId": "f"}, headers={"X-Guest-Key": key}, timeout=30
    )
    assert created.status_code == 201, created.text
    assert export(server.url, key).status_code == 200

    own_firestore.stop()
    started = time.monotonic()
    refused = export(server.url, key)
    took = time.monotonic() - started

    error = assert_error(refused, 503, "unavailable")
    assert "Firestore" in error["message"]
    assert int(refused.headers["Retry-After"]) >= 1
    assert "Content-Disposition" not in refused.headers
    assert took < 15  # the query's own deadline (5 s), not the request's timeout
    own_firestore.start()  # the same port, with the documents it had
    # The client's gRPC channel reconnects on its own backoff (about a second after a failure, then
    # longer), so a request right after the restart may still meet the channel's last failure: each
    # such answer is the same clean 503, and the export works again within seconds.
    deadline = time.monotonic() + 30
    again = export(server.url, key)
    while again.status_code == 503 and time.monotonic() < deadline:
        assert_error(again, 503, "unavailable")
        time.sleep(float(again.headers["Retry-After"]) / 4)  # a client honouring Retry-After, sooner
        again = export(server.url, key)
    assert again.status_code == 200 and again.json()["sessions"][0]["sessionId"] == created.json()["sessionId"]


def test_firestore_down_after_the_first_chunk_ends_the_document_unfinished(
    stack, db, own_firestore, monkeypatch, lines
):
    for name, value in stack.env().items():
        if name != "FUNCTIONS_URL":
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", own_firestore.host)
    api, key = InProcessApi(), new_guest_key()
    # More sessions than one uploads query covers (30): the second batch needs Firestore again.
    sessions = [api.post("create_session", {"metadata": {"n": n}}, guest=key).json()["sessionId"] for n in range(40)]

    with api.stream("export_my_data", guest=key) as response:
        assert response.status_code == 200
        body = iter(response.response)
        first = next(body)  # the record and the first batch of sessions, each with its uploads
        own_firestore.stop()
        received = []
        with pytest.raises(StreamEndedEarly):  # what makes the server cut the connection
            for chunk in body:
                received.append(chunk)
        rest = b"".join(received)

    text = (first + rest).decode("utf-8")
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)
    # It stops after the first batch's last session, and the document is not closed: with
    # the closing brackets added it would parse.
    assert text.endswith('"uploads":[]}')
    written = json.loads(text + "]}")["sessions"]
    assert [s["sessionId"] for s in written] == sessions[::-1][:30]
    (ended,) = [r for r in lines if r.levelno >= logging.ERROR]
    assert ended.getMessage().startswith("export_my_data: the streamed answer ended early after ")
    assert "DependencyUnavailable" in ended.getMessage() and key not in ended.getMessage()
