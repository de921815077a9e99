"""Bodies over 256 KiB refused before they are read, and bodies that do not arrive in time
(SPEC §4; docs/design/body-limits.md), against a server of its own under gunicorn."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time

import psutil
import pytest
import requests

from devtools.ports import free_port
from devtools.stack import FunctionsServer
from shared.web.http import MAX_BODY_BYTES
from shared.web.reading import BODY_SECONDS
from tests.support import new_guest_key

MIB = 1024 * 1024
FLOOD = 16  # more connections than the server's threads (FunctionsServer: 8)


@pytest.fixture
def server(stack, db, tmp_path):
    server = FunctionsServer(free_port(), stack.env(), tmp_path / "functions.log").start()
    yield server
    server.stop()


def worker(server: FunctionsServer) -> psutil.Process:
    """The one gunicorn worker of the server (its master's only child)."""
    assert server.process and server.process.process
    (child,) = psutil.Process(server.process.process.pid).children()
    return child


def connect(server: FunctionsServer, timeout: float = 30) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=timeout)


def head(length: int | None = None, chunked: bool = False) -> bytes:
    lines = [
        "POST /create_session HTTP/1.1",
        "Host: 127.0.0.1",
        "Content-Type: application/json",
        f"X-Guest-Key: {new_guest_key()}",
    ]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class Answer:
    """An HTTP/1.1 answer read from a socket: its status and JSON body (Content-Length framed),
    and whether the server closed the connection after it."""

    def __init__(self, sock: socket.socket):
        self.status: int | None = None
        self.body: dict | None = None
        self.closed = False
        data = b""
        try:
            while b"\r\n\r\n" not in data:
                part = sock.recv(65536)
                if not part:
                    self.closed = True
                    return
                data += part
            header, _, rest = data.partition(b"\r\n\r\n")
            lines = header.decode("latin-1").split("\r\n")
            self.status = int(lines[0].split()[1])
            fields = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
            length = int(fields.get("content-length", "0"))
            while len(rest) < length:
                part = sock.recv(65536)
                if not part:
                    break
                rest += part
            self.body = json.loads(rest[:length]) if length else None
        except (ConnectionResetError, TimeoutError):
            self.closed = True

    def assert_error(self, status: int, code: str) -> None:
        assert self.status == status, (self.status, self.body)
        assert self.body and set(self.body) == {"error"}
        assert self.body["error"]["code"] == code and self.body["error"]["message"]


def closed_by_server(sock: socket.socket) -> bool:
    """Whether reading meets the end of the connection (or a reset) before the socket's timeout."""
    try:
        while sock.recv(65536):
            pass
        return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def create_session_seconds(server: FunctionsServer) -> float:
    started = time.monotonic()
    answer = requests.post(f"{server.url}/create_session", headers={"X-Guest-Key": new_guest_key()}, timeout=15)
    assert answer.status_code == 201, answer.text
    return time.monotonic() - started


def test_a_declared_length_over_the_limit_is_refused_before_any_body_byte(server):
    with connect(server, timeout=5) as sock:
        sock.sendall(head(length=MAX_BODY_BYTES + 1))  # and not one byte of the body
        answer = Answer(sock)
        answer.assert_error(413, "payload_too_large")
        assert closed_by_server(sock)


def test_a_100_mib_chunked_body_is_refused_while_it_streams_with_the_memory_flat(server):
    create_session_seconds(server)  # the worker has imported what a request needs
    process = worker(server)
    before = process.memory_info().rss
    peak = [before]
    sending = threading.Event()
    sending.set()

    def watch_memory():
        while sending.is_set():
            peak[0] = max(peak[0], process.memory_info().rss)
            time.sleep(0.02)

    total, chunk = 100 * MIB, b"x" * (64 * 1024)
    frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    sent_when_answered: list[int] = []
    sent = 0
    with connect(server) as sock:
        answers: list[Answer] = []

        def read_answer():
            answers.append(Answer(sock))
            sent_when_answered.append(sent)
            # What a client does once answered: stop sending. A send blocked on the server's closed
            # window (it reads no more; its side may wait in FIN-WAIT-2 for a minute) fails at once.
            try:
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass

        reader = threading.Thread(target=read_answer)
        watcher = threading.Thread(target=watch_memory)
        watcher.start()
        sock.sendall(head(chunked=True))
        reader.start()
        try:
            while sent < total and reader.is_alive():
                sock.sendall(frame)
                sent += len(chunk)
            if sent >= total:
                sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # answered (read_answer shut the sending side), or closed by the server
        finally:
            reader.join(timeout=30)
            sending.clear()
            watcher.join()

    grown = (max(peak[0], process.memory_info().rss) - before) / MIB
    answered = sent_when_answered[0] / MIB
    print(f"worker RSS {before / MIB:.1f} MiB before, grown by {grown:.1f} MiB; answered after {answered:.1f} MiB sent")
    answers[0].assert_error(413, "payload_too_large")
    assert answered < 25, f"answered after {answered:.1f} MiB of 100"
    assert grown < 16, f"the worker grew by {grown:.1f} MiB"


def test_a_slow_body_flood_leaves_the_server_answering(server):
    create_session_seconds(server)  # the worker has imported what a request needs
    usual = create_session_seconds(server)
    stalled = []
    try:
        for _ in range(FLOOD):
            sock = connect(server, timeout=BODY_SECONDS + 10)
            sock.sendall(head(length=MAX_BODY_BYTES + 1) + b"{")  # one byte, then nothing
            stalled.append(sock)
        during = create_session_seconds(server)
        print(f"create_session: {usual:.3f} s before the flood, {during:.3f} s during it")
        assert during < 3, f"create_session took {during:.1f} s during the flood ({usual:.2f} s before)"
        for sock in stalled:  # each was refused, and its connection closed, without waiting for the body
            Answer(sock).assert_error(413, "payload_too_large")
            assert closed_by_server(sock)
    finally:
        for sock in stalled:
            sock.close()


def test_a_stalled_body_within_the_limit_is_given_up_after_the_deadline(server):
    started = time.monotonic()
    with connect(server, timeout=BODY_SECONDS + 10) as sock:
        sock.sendall(head(length=100) + b"{")  # 1 of the 100 bytes it declared
        answer = Answer(sock)
        waited = time.monotonic() - started
        answer.assert_error(400, "invalid_argument")
        assert "did not arrive" in answer.body["error"]["message"]  # type: ignore[index]
        assert closed_by_server(sock)
    assert BODY_SECONDS - 1 < waited < BODY_SECONDS + 3, waited
    assert create_session_seconds(server) < 3  # and the thread it held is free again


def test_a_trickled_body_is_given_up_at_the_deadline_too(server):
    """One byte a second never lets a read wait long, but the deadline is for the whole body."""
    started = time.monotonic()
    with connect(server, timeout=BODY_SECONDS + 10) as sock:
        sock.sendall(head(length=1000))
        answers: list[Answer] = []
        reader = threading.Thread(target=lambda: answers.append(Answer(sock)))
        reader.start()
        try:
            while reader.is_alive() and time.monotonic() - started < BODY_SECONDS + 5:
                sock.sendall(b" ")
                reader.join(timeout=1)
        except (BrokenPipeError, ConnectionResetError):
            pass
        reader.join(timeout=10)
    waited = time.monotonic() - started
    answers[0].assert_error(400, "invalid_argument")
    assert waited < BODY_SECONDS + 3, waited


def test_a_small_body_of_a_refused_request_is_read_so_the_connection_serves_the_next(server):
    """A 405 before the body was read: the body is still read, so it is not taken for the next
    request's first bytes on the same connection."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request("POST", "/get_visitor", body=b"{}", headers={"Content-Type": "application/json"})
        refused = connection.getresponse()
        refused.read()
        assert refused.status == 405
        sock = connection.sock
        connection.request("GET", "/get_visitor")
        following = connection.getresponse()
        assert json.loads(following.read())["error"]["code"] == "unauthenticated"
        assert following.status == 401 and connection.sock is sock  # the same connection
    finally:
        connection.close()


def test_a_refused_body_closes_the_connection_and_the_answer_says_so(server):
    """A body over the limit is read no more and gunicorn closes the connection after the 413: the
    answer says `Connection: close`, so a client's keep-alive pool opens a new connection for its
    next request instead of sending it into the closing one (RemoteDisconnected, now and then)."""
    session = requests.Session()
    url = f"http://127.0.0.1:{server.port}/create_session"
    headers = {"Content-Type": "application/json", "X-Guest-Key": new_guest_key()}
    for _ in range(20):
        refused = session.post(url, data=b"x" * (MAX_BODY_BYTES + 1), headers=headers, timeout=30)
        assert refused.status_code == 413 and refused.headers["Connection"] == "close"
        following = session.post(url, data=b"[", headers=headers, timeout=30)
        assert following.status_code == 400 and following.json()["error"]["code"] == "invalid_json"
    # An answer whose body was read keeps the connection.
    assert "close" not in following.headers.get("Connection", "")
