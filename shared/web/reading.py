"""Reading a request's body: at most the limit, within BODY_SECONDS, and nothing of a body the
function does not read (docs/design/body-limits.md)."""

from __future__ import annotations

import heapq
import io
import itertools
import os
import socket
import threading
import time
from typing import Any

import flask
from werkzeug.exceptions import ClientDisconnected, RequestEntityTooLarge

from shared.core.errors import InvalidArgument, PayloadTooLarge, ServiceError

# The whole body, not each read, must arrive within this: 256 KiB in 10 s is 26 KB/s. Google's
# front end bounds less: HTTP/1 bodies over 32 MiB (https://cloud.google.com/run/quotas) and
# requests over the request timeout, 300 s by default
# (https://cloud.google.com/run/docs/configuring/request-timeout).
BODY_SECONDS = 10
_PIECE = 64 * 1024
_READ = "visitors.body_read"  # in the environ: True once read to its end, False once refused


def read_body(request: flask.Request, limit: int) -> bytes:
    """The body, refused with 413 over `limit` bytes (by its Content-Length before any byte is
    read, else as it streams) and with 400 if it does not arrive within BODY_SECONDS."""
    request.environ[_READ] = False
    declared = request.content_length
    if declared is not None and declared > limit:
        raise PayloadTooLarge(f"The request body is {declared} bytes; the limit is {limit}.")
    parts: list[bytes] = []
    size = 0
    body = request.environ.get("wsgi.input")
    watch = _WATCHDOG.watch(request.environ.get("gunicorn.socket"), not hasattr(body, "failed"))
    try:
        while size <= limit:
            part = request.stream.read(min(_PIECE, limit + 1 - size))
            if not part:
                break
            parts.append(part)
            size += len(part)
    except RequestEntityTooLarge:  # werkzeug's MAX_CONTENT_LENGTH (main.py), should it come first
        size = limit + 1
    except (ClientDisconnected, OSError):
        if not watch.expired:
            raise InvalidArgument("The request body ended before the length it declared.") from None
    finally:
        _WATCHDOG.done(watch)
    if watch.expired:
        raise InvalidArgument(f"The request body did not arrive within {BODY_SECONDS} seconds.")
    if size > limit:
        raise PayloadTooLarge(f"The request body is over the limit of {limit} bytes.")
    request.environ[_READ] = True
    return b"".join(parts)


def finish(request: flask.Request, limit: int) -> bool:
    """After the answer is made: a body not read yet (the request was refused before it) is read
    as read_body would, so that the connection can serve its next request; one that was refused
    is read no more. functions-framework would read all of it after the answer (get_data in its
    after_request), and gunicorn the rest to find the next request; it closes the connection.
    True when the connection is closed after this answer: the answer must then say
    `Connection: close`, or a client may send its next request into the closing connection."""
    state = request.environ.get(_READ)
    if state or not _has_body(request):
        return False
    if state is None:
        try:
            read_body(request, limit)
            return False
        except ServiceError:
            pass
    request.stream = io.BytesIO()  # what get_data reads now
    _close_after_answer(request.environ)
    return True


def _has_body(request: flask.Request) -> bool:
    return bool(request.content_length) or "chunked" in request.headers.get("Transfer-Encoding", "").lower()


def _close_after_answer(environ: dict) -> None:
    """gunicorn 27 closes a connection after the answer, without reading the rest of the body,
    when its body reader has `failed`; with the reading side shut, its close (which lingers up to
    2 s reading, in the worker's main thread) ends at once. A server without `failed` reads the
    rest as it would: shut, its next request would start inside this body."""
    body: Any = environ.get("wsgi.input")
    if hasattr(body, "failed"):
        body.failed = True
        sock = environ.get("gunicorn.socket")
        if sock is not None:
            _stop_reading(sock, both=False)


def _stop_reading(sock: Any, both: bool) -> None:
    """Shut the connection's reading side: a read waiting on it returns at once with no data.
    Both sides where gunicorn cannot be told to close the connection (_close_after_answer): a
    body cut short must not leave its rest to be read as the next request."""
    try:
        sock.shutdown(socket.SHUT_RDWR if both else socket.SHUT_RD)
    except OSError:
        pass  # already closed by the client


class _Watch:
    __slots__ = ("at", "both", "done", "expired", "sock")

    def __init__(self, at: float, sock: Any, both: bool):
        self.at, self.sock, self.both = at, sock, both
        self.expired = self.done = False


class _Watchdog:
    """One thread per worker process that stops the reading of bodies past their deadline (a
    socket timeout would bound each read, not the body: a byte a second never waits long)."""

    def __init__(self) -> None:
        self._wake = threading.Condition()
        self._due: list[tuple[float, int, _Watch]] = []
        self._order = itertools.count()
        self._pid: int | None = None

    def watch(self, sock: Any, both: bool) -> _Watch:
        watch = _Watch(time.monotonic() + BODY_SECONDS, sock, both)
        if sock is None:  # not served by gunicorn (tests in process): nothing to stop
            return watch
        with self._wake:
            if self._pid != os.getpid():  # first use in this process (gunicorn forks its workers)
                self._pid, self._due = os.getpid(), []
                threading.Thread(target=self._run, name="body-deadlines", daemon=True).start()
            # Deadlines only grow: a new one is never due before those queued, so the thread needs
            # waking only when it waits on none (not once per request).
            idle = not self._due
            heapq.heappush(self._due, (watch.at, next(self._order), watch))
            if idle:
                self._wake.notify()
        return watch

    def done(self, watch: _Watch) -> None:
        with self._wake:
            watch.done = True

    def _run(self) -> None:
        with self._wake:
            while True:
                while self._due and self._due[0][2].done:
                    heapq.heappop(self._due)
                if not self._due:
                    self._wake.wait()
                    continue
                wait = self._due[0][0] - time.monotonic()
                if wait > 0:
                    self._wake.wait(wait)
                    continue
                watch = heapq.heappop(self._due)[2]
                watch.expired = True
                _stop_reading(watch.sock, watch.both)


_WATCHDOG = _Watchdog()
