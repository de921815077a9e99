"""export_data streams (SPEC §10): an export of a million responses, served by a
gunicorn of its own, whose worker's resident memory is sampled while the export
is read; and a client that goes away mid-export, after which the export's
transaction and thread end and the function serves the next request."""

from __future__ import annotations

import io
import json
import threading
import time
import zipfile

import psutil
import pytest
import requests
from sqlalchemy import text

from devtools.ports import free_port
from devtools.stack import FunctionsServer
from tests.support import scalar

SESSIONS, RESPONSES_EACH = 1_000, 1_000  # a million responses
MB = 1024 * 1024


@pytest.fixture
def a_million_responses(db):
    with db.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO sessions (id, visitor_number, experiment_id, metadata, created_at) "
                "SELECT gen_random_uuid(), g, 'big', jsonb_build_object('n', g), now() - g * interval '1 minute' "
                "FROM generate_series(1, :n) g"
            ),
            {"n": SESSIONS},
        )
        conn.execute(
            text(
                "INSERT INTO responses (id, session_id, visitor_number, level, data, created_at) "
                "SELECT gen_random_uuid(), s.id, s.visitor_number, mod(g, 10), "
                "       jsonb_build_object('answer', md5(g::text), 'ms', g), s.created_at + g * interval '1 second' "
                "FROM sessions s, generate_series(1, :each) g"
            ),
            {"each": RESPONSES_EACH},
        )
        conn.execute(text("ANALYZE sessions, responses"))
    return db


@pytest.fixture
def server(stack, tmp_path):
    """The functions on a gunicorn of their own, so that its one worker's memory is the export's."""
    functions = FunctionsServer(free_port(), stack.env(), tmp_path / "functions.log", workers=1).start()
    yield functions
    functions.stop()


def worker_of(server: FunctionsServer) -> psutil.Process:
    [worker] = psutil.Process(server.process.process.pid).children()
    return worker


class PeakMemory:
    """The highest RSS of a process, sampled every 20 ms until stopped."""

    def __init__(self, process: psutil.Process):
        self.process, self.peak = process, process.memory_info().rss
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self):
        while not self.done.wait(0.02):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *_):
        self.done.set()
        self.thread.join()


def test_a_million_responses_stream_in_bounded_memory(a_million_responses, server, auth_emulator, tmp_path):
    token = auth_emulator.researcher(True).id_token
    headers = {"Authorization": f"Bearer {token}"}
    # Warm: every module the export imports is loaded, the pool and clients are made.
    assert (
        requests.get(
            f"{server.url}/export_data", params={"experimentId": "none"}, headers=headers, timeout=60
        ).status_code
        == 200
    )
    worker = worker_of(server)
    idle = worker.memory_info().rss
    out = tmp_path / "export.zip"
    with (
        PeakMemory(worker) as memory,
        requests.get(f"{server.url}/export_data", headers=headers, stream=True, timeout=600) as answer,
        out.open("wb") as file,
    ):
        assert answer.status_code == 200
        assert answer.headers["Transfer-Encoding"] == "chunked"
        chunks = 0
        for chunk in answer.iter_content(chunk_size=None):
            file.write(chunk)
            chunks += 1
    growth = memory.peak - idle
    print(
        f"export of {SESSIONS * RESPONSES_EACH} responses: {out.stat().st_size / MB:.1f} MB zipped in "
        f"{chunks} chunks; worker RSS {idle / MB:.0f} MB idle, peak {memory.peak / MB:.0f} MB "
        f"(+{growth / MB:.1f} MB)"
    )
    assert growth < 100 * MB
    assert chunks > 100
    with zipfile.ZipFile(out) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        assert manifest["files"]["responses.csv"]["rows"] == SESSIONS * RESPONSES_EACH
        assert manifest["files"]["sessions.csv"]["rows"] == SESSIONS
        with archive.open("responses.csv") as responses:
            lines = sum(1 for _ in io.TextIOWrapper(responses, encoding="utf-8"))
    assert lines == SESSIONS * RESPONSES_EACH + 1


def test_a_client_that_goes_away_stops_the_export(a_million_responses, server, auth_emulator, db):
    token = auth_emulator.researcher(True).id_token
    headers = {"Authorization": f"Bearer {token}"}
    with requests.get(
        f"{server.url}/export_data", params={"format": "csv"}, headers=headers, stream=True, timeout=60
    ) as answer:
        assert answer.status_code == 200
        assert len(answer.raw.read(256 * 1024)) == 256 * 1024
        assert exporting(db) == 1
        worker = worker_of(server)
        threads = worker.num_threads()  # the request's, and the export's own
    # The connection is closed: the export's next chunk finds nobody, its thread stops, its
    # transaction ends (the connection that was mid-COPY is closed, not pooled).
    wait_until(lambda: exporting(db) == 0, "the export's transaction ends")
    wait_until(lambda: worker.num_threads() == threads - 1, "the export's thread ends")
    assert requests.get(f"{server.url}/get_study_stats", headers=headers, timeout=60).status_code == 200
    small = requests.get(
        f"{server.url}/export_data", params={"format": "jsonl", "table": "visitors"}, headers=headers, timeout=120
    )
    assert small.status_code == 200 and len(small.text.splitlines()) == SESSIONS


def exporting(db) -> int:
    """Database sessions of an export that are still open."""
    return scalar(
        db,
        "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
        "AND state IN ('active', 'idle in transaction') AND query LIKE '%export%' "
        "AND pid <> pg_backend_pid()",
    )


def wait_until(condition, what: str, timeout: float = 30.0) -> None:
    """Poll the condition (what the product does meanwhile cannot be waited on otherwise)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting: {what}"
        time.sleep(0.05)
