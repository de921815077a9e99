"""complete_session in process, no HTTP (bench/run.py's section "complete_session vs
submit_response"): the median cost of completing a session - the session row locked, its
responses counted, the answer stored, for a configured experiment the ledger row too - against
one submit_response, the cheapest write a visit makes, measured in interleaved rounds."""

from __future__ import annotations

import json
import secrets
import statistics

from sqlalchemy import text

from bench.harness import DB_ROUNDS, Series, notes, rotated, row, timed_threads
from bench.responses import backend_cpu

RESPONSES = 5  # each completed session holds this many responses
CALLS = 150  # completions per variant and round (each needs a fresh session)
CONFIGURED = "bench-complete"


def bench_complete_session(engine) -> None:
    """One thread: submit_response into a session, complete_session of a free label's session,
    of a configured experiment's (the participation ledger written), and a repeat (answered as
    stored); rounds interleaved, each completion on a session made beforehand, not timed."""
    import logging

    from shared.studies.completion import Completion, complete_session
    from shared.visitors.responses import submit_response
    from shared.visitors.sessions import create_session
    from shared.web.auth import Guest
    from shared.web.models import NewResponse, NewSession

    logging.disable(logging.INFO)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO experiments (id, config) VALUES (:id, CAST(:config AS jsonb)) "
                "ON CONFLICT (id) DO UPDATE SET config = excluded.config"
            ),
            {
                "id": CONFIGURED,
                "config": json.dumps(
                    {
                        "experimentId": CONFIGURED,
                        "outcomes": {"completed": {"code": "BENCH001"}},
                        "redirectUrl": "https://lab.example.org/done?c={code}&s={sessionId}",
                    }
                ),
            },
        )
    data = {"answer": "b" * 200, "ms": 1234}

    def sessions(experiment: str, count: int) -> list:
        """`count` sessions of new guests, each with RESPONSES responses: ready to complete."""
        made = []
        for _ in range(count):
            guest = Guest(secrets.token_bytes(32))
            session_id = create_session(engine, guest, NewSession(experimentId=experiment))[1].session_id
            for i in range(RESPONSES):
                submit_response(engine, guest, NewResponse(sessionId=session_id, level=i, data=data))
            made.append((guest, session_id))
        return made

    submitter = Guest(secrets.token_bytes(32))
    target = create_session(engine, submitter, NewSession(experimentId="bench-complete-submit"))[1].session_id

    def submit():
        submit_response(engine, submitter, NewResponse(sessionId=target, level=1, data=data))

    def completer(pending: list):
        def complete():
            guest, session_id = pending.pop()
            complete_session(engine, guest, Completion(sessionId=session_id, responseCount=RESPONSES), False)

        return complete

    timed_threads(submit, 1, 100, 5.0)  # the pooled connection open, its statements prepared
    backend_ms = backend_cpu(engine)
    variants = ("submit_response", "complete, free label", "complete, configured", "complete, repeat")
    series = {name: Series() for name in variants}
    medians: dict[str, list[float]] = {name: [] for name in variants}
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    try:
        for round_ in range(DB_ROUNDS):
            free, configured = sessions("bench-complete-free", CALLS), sessions(CONFIGURED, CALLS)
            done = list(configured)
            calls = {
                "submit_response": submit,
                "complete, free label": completer(free),
                "complete, configured": completer(configured),
                "complete, repeat": completer(done),
            }
            # Each round its own order; the repeats last, of the sessions completed in this round.
            for name in (*rotated(list(variants[:3]), round_), "complete, repeat"):
                before = backend_ms() if backend_ms else 0.0
                latencies, elapsed = timed_threads(calls[name], 1, CALLS, 30.0)
                series[name].add(latencies, elapsed)
                medians[name].append(statistics.median(latencies))
                if backend_ms:
                    cpu[name].append((backend_ms() - before) / len(latencies))
        base = statistics.median(series["submit_response"].latencies)
        for name in variants:
            s = series[name]
            if not s.latencies:
                continue
            ratio = statistics.median(s.latencies) / base
            spread = f"rounds' medians {min(medians[name]) * 1000:.2f}-{max(medians[name]) * 1000:.2f} ms"
            row(f"DB: {name}", 1, s.latencies, s.throughput, f"{ratio:.2f}x submit_response; {spread}")
            if cpu[name]:
                notes.append(
                    f"{name}: server CPU per call (all backends' run time, median of its rounds) "
                    f"{statistics.median(cpu[name]):.3f} ms (rounds {min(cpu[name]):.3f}-{max(cpu[name]):.3f})."
                )
    finally:
        logging.disable(logging.NOTSET)
