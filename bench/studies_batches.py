"""submit_response's batch form over HTTP (bench/run.py's section "submit_response batches",
SPEC §14.6): a page's 100 responses sent as one batch, against the same 100 sent one call each,
in responses per second; goal >= 10x. One client, one kept-alive connection (a browser tab),
a new session each round, rounds interleaved."""

from __future__ import annotations

import secrets
import statistics
import time
import uuid

import requests

from bench.harness import ROUNDS, goal, notes, row
from devtools.stack import Stack

RESPONSES = 100
BATCH_ROUNDS = max(ROUNDS, 5)  # each round is well under a second: more of them


def trial(index: int) -> dict:
    """A jsPsych trial's data, about 200 bytes."""
    return {
        "trial_index": index,
        "trial_type": "html-keyboard-response",
        "stimulus": f"<p>word {index}</p>",
        "response": "f",
        "rt": 812 + index,
        "time_elapsed": 20_000 + 900 * index,
        "correct": index % 3 != 0,
    }


def bench_studies_batches(stack: Stack) -> None:
    url = f"{stack.env()['FUNCTIONS_URL']}"
    http = requests.Session()
    key = secrets.token_urlsafe(32)
    headers = {"X-Guest-Key": key}

    def new_session() -> str:
        answer = http.post(f"{url}/create_session", json={"experimentId": "bench-batches"}, headers=headers, timeout=30)
        answer.raise_for_status()
        return answer.json()["sessionId"]

    def singles() -> tuple[list[float], float]:
        session = new_session()
        latencies = []
        started = time.perf_counter()
        for index in range(RESPONSES):
            body = {"sessionId": session, "responseId": str(uuid.uuid4()), "level": index % 8, "data": trial(index)}
            sent = time.perf_counter()
            answer = http.post(f"{url}/submit_response", json=body, headers=headers, timeout=30)
            latencies.append(time.perf_counter() - sent)
            assert answer.status_code == 201, answer.text
        return latencies, time.perf_counter() - started

    def batch(size: int = RESPONSES) -> float:
        session = new_session()
        items = [{"responseId": str(uuid.uuid4()), "level": index % 8, "data": trial(index)} for index in range(size)]
        started = time.perf_counter()
        answer = http.post(
            f"{url}/submit_response", json={"sessionId": session, "responses": items}, headers=headers, timeout=60
        )
        elapsed = time.perf_counter() - started
        assert answer.status_code == 201, answer.text
        assert len(answer.json()["responses"]) == size
        return elapsed

    singles()  # warm: the connection, the worker's threads, the statement prepared on pooled connections
    batch()
    single_latencies: list[float] = []
    single_rates, batch_times, ratios = [], [], []
    for round_ in range(BATCH_ROUNDS):
        order = ("batch", "singles") if round_ % 2 else ("singles", "batch")
        for kind in order:
            if kind == "singles":
                latencies, elapsed = singles()
                single_latencies += latencies
                single_rates.append(RESPONSES / elapsed)
            else:
                batch_times.append(batch())
        ratios.append((RESPONSES / batch_times[-1]) / single_rates[-1])
    batch_rates = [RESPONSES / elapsed for elapsed in batch_times]
    largest = [batch(500) for _ in range(3)]

    ratio = statistics.median(ratios)
    row(
        f"HTTP submit_response: {RESPONSES} single calls (responses/s)",
        1,
        single_latencies,
        statistics.median(single_rates),
        "1.0x",
    )
    row(
        f"HTTP submit_response: one batch of {RESPONSES} (responses/s)",
        1,
        batch_times,
        statistics.median(batch_rates),
        f"{ratio:.1f}x ({min(ratios):.1f}-{max(ratios):.1f}x)",
    )
    row(
        "HTTP submit_response: one batch of 500 (responses/s)",
        1,
        largest,
        500 / statistics.median(largest),
        "-",
    )
    goal(
        f"submit_response: {RESPONSES} responses as one batch >= 10x the responses/s of {RESPONSES} single calls "
        f"({ratio:.1f}x, rounds {min(ratios):.1f}-{max(ratios):.1f}x)",
        ratio >= 10,
    )
    notes.append(
        f"submit_response batches: one client on one kept-alive connection, {BATCH_ROUNDS} interleaved rounds, a "
        f"new session each; a single call's median {statistics.median(single_latencies) * 1000:.1f} ms, a batch of "
        f"{RESPONSES} {statistics.median(batch_times) * 1000:.1f} ms (one statement: the items as one JSON "
        "parameter, one lock of the session's order, one INSERT, the counters' trigger once)."
    )
