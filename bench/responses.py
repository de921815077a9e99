"""submit_response in process, no HTTP (bench/run.py's section "submit_response"): what the
study counters' triggers (sql/010_study_counters.sql) add to each response, measured against
the same calls with those triggers disabled, interleaved in one run."""

from __future__ import annotations

import secrets
import statistics
from pathlib import Path

from sqlalchemy import text

from bench.harness import DB_ROUNDS, Series, goal, notes, row, timed_threads

SESSIONS = 64
CALLS = 300
# What the counters maintain (sql/010_study_counters.sql); switched off for the "off" variant.
TRIGGER = "responses_counted"


def bench_submit_response(engine) -> None:
    """One guest's SESSIONS sessions, answered with the product's submit_response: one thread
    (latency, and the server's CPU per call from its backends' run time), 16 threads over every
    session, and 16 threads into one session (each waits for the session's counters row: the
    worst case), with the counters' trigger on and off, rounds interleaved."""
    import logging

    from shared.visitors.responses import submit_response
    from shared.visitors.sessions import create_session
    from shared.web.auth import Guest
    from shared.web.models import NewResponse, NewSession

    logging.disable(logging.INFO)  # the per-response info lines would drown the table
    guest = Guest(secrets.token_bytes(32))
    sessions = [
        create_session(engine, guest, NewSession(experimentId="bench-submit"))[1].session_id for _ in range(SESSIONS)
    ]
    data = {"answer": "b" * 200, "ms": 1234}

    def any_session():
        session = sessions[secrets.randbelow(SESSIONS)]
        submit_response(engine, guest, NewResponse(sessionId=session, level=secrets.randbelow(8), data=data))

    def one_session():
        submit_response(engine, guest, NewResponse(sessionId=sessions[0], level=3, data=data))

    def counters(on: bool) -> None:
        with engine.begin() as conn:
            conn.execute(text(f"ALTER TABLE responses {'ENABLE' if on else 'DISABLE'} TRIGGER {TRIGGER}"))

    timed_threads(any_session, 16, 200, 10.0)  # every pooled connection open, its statement prepared
    backend_ms = backend_cpu(engine)
    try:
        for threads, call, label in (
            (1, any_session, "64 sessions"),
            (16, any_session, "64 sessions"),
            (16, one_session, "one session"),
        ):
            series = {"on": Series(), "off": Series()}
            cpu: dict[str, list[float]] = {"on": [], "off": []}
            medians: dict[str, list[float]] = {"on": [], "off": []}
            for round_ in range(DB_ROUNDS):
                for key in ("off", "on") if round_ % 2 else ("on", "off"):
                    counters(key == "on")
                    before = backend_ms() if backend_ms else 0.0
                    latencies, elapsed = timed_threads(call, threads, CALLS if threads == 1 else 1000, 2.0)
                    series[key].add(latencies, elapsed)
                    medians[key].append(statistics.median(latencies))
                    if backend_ms:
                        cpu[key].append((backend_ms() - before) / len(latencies))
            on, off = series["on"], series["off"]
            spread = (
                f"off's rounds {min(off.per_round):.0f}-{max(off.per_round):.0f}/s, "
                f"on's {min(on.per_round):.0f}-{max(on.per_round):.0f}/s"
            )
            for key, s in (("off", off), ("on", on)):
                row(
                    f"DB: submit_response, counters {key} ({label})",
                    threads,
                    s.latencies,
                    s.throughput,
                    "1.00" if key == "off" else f"{on.ratio(off):.2f} of off; {spread}",
                )
            if cpu["on"]:
                notes.append(
                    f"submit_response, {threads} thread(s), {label}: server CPU per call (all backends' run time, "
                    f"median of {DB_ROUNDS} rounds) {statistics.median(cpu['off']):.3f} ms counters off "
                    f"(rounds {min(cpu['off']):.3f}-{max(cpu['off']):.3f}), {statistics.median(cpu['on']):.3f} ms on "
                    f"(rounds {min(cpu['on']):.3f}-{max(cpu['on']):.3f})."
                )
            if threads == 1:
                slower = statistics.median(on.latencies) - statistics.median(off.latencies)
                rounds = medians["off"]
                goal(
                    f"submit_response with counters within off's run-to-run range at 1 thread: median "
                    f"+{slower * 1000:.3f} ms against a range of {(max(rounds) - min(rounds)) * 1000:.3f} ms",
                    slower <= max(rounds) - min(rounds),
                )
    finally:
        counters(True)
        with engine.begin() as conn:  # what was written while off, counted again
            conn.execute(text("SELECT recount_sessions(CAST(:ids AS uuid[]))"), {"ids": [str(s) for s in sessions]})
        logging.disable(logging.NOTSET)


def backend_cpu(engine):
    """A function giving the run time (ms) of every backend of this database's clients, or None
    where the server's processes are not readable (/proc/<pid>/schedstat)."""
    with engine.connect() as conn:
        pids = (
            conn.execute(
                text(
                    "SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend' "
                    "AND datname = current_database()"
                )
            )
            .scalars()
            .all()
        )
    if not all(Path(f"/proc/{pid}/comm").exists() for pid in pids):
        return None

    def run_time() -> float:
        paths = [Path(f"/proc/{pid}/schedstat") for pid in pids]
        return sum(int(path.read_text().split()[0]) for path in paths if path.exists()) / 1e6

    return run_time
