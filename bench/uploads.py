"""on_upload_finalized (bench/run.py's section "on_upload_finalized"): finalized events of real
objects in the Storage emulator delivered over HTTP, first deliveries against duplicates."""

from __future__ import annotations

import os
import secrets
import statistics
import time

import requests

from bench.harness import goal, row
from devtools.stack import BUCKET, PROJECT, Stack

# --- on_upload_finalized: first vs duplicate ---------------------------------------------


def upload_ticket(functions_url: str, guest_key: str, session_id: str, name: str) -> str:
    """create_upload_ticket's ticket for sessions/{session_id}/{name}, as the page asks before an upload."""
    answer = requests.post(
        f"{functions_url}/create_upload_ticket",
        json={"sessionId": session_id, "name": name},
        headers={"X-Guest-Key": guest_key},
        timeout=30,
    )
    assert answer.status_code == 201, answer.text
    return answer.json()["ticket"]


def bench_uploads(stack: Stack, n: int = 40) -> None:
    from google.cloud import storage

    from devtools.clients import StorageEvents

    env = stack.env()
    os.environ["STORAGE_EMULATOR_HOST"] = env["STORAGE_EMULATOR_HOST"]
    bucket = storage.Client(project=PROJECT).bucket(BUCKET)
    functions = env["FUNCTIONS_URL"]
    key = secrets.token_urlsafe(32)
    session = requests.post(
        f"{functions}/create_session", json={"experimentId": "bench"}, headers={"X-Guest-Key": key}, timeout=30
    ).json()
    items = []
    for i in range(n + 1):
        blob = bucket.blob(f"sessions/{session['sessionId']}/file-{i}.txt")
        blob.metadata = {"uploadTicket": upload_ticket(functions, key, session["sessionId"], f"file-{i}.txt")}
        blob.upload_from_string(b"x" * 100, content_type="text/plain")
        items.append(dict(blob._properties))
    events = StorageEvents(f"{functions}/on_upload_finalized")
    events.deliver(items[0])  # warm the clients of the function
    firsts, duplicates = [], []
    for label, into in (("first", firsts), ("duplicate", duplicates)):
        start_all = time.perf_counter()
        for item in items[1:]:
            start = time.perf_counter()
            r = events.deliver(item)
            into.append(time.perf_counter() - start)
            assert r.status_code < 300, (label, r.status_code, r.text)
        if label == "first":
            first_tput = n / (time.perf_counter() - start_all)
        else:
            dup_tput = n / (time.perf_counter() - start_all)
    row("on_upload_finalized: distinct events (sequential)", 1, firsts, first_tput, "1.00")
    ratio = statistics.median(duplicates) / statistics.median(firsts)
    row("on_upload_finalized: duplicate events", 1, duplicates, dup_tput, f"{ratio:.2f} of first's cost")
    goal(f"a duplicate event is cheaper than a first one: {ratio:.2f} of the median cost", ratio < 1.0)
