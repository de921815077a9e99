"""create_session into a configured experiment (bench/run.py's section "studies admission"): new
guests into one experiment with two conditions against new guests into an unconfigured one, over
HTTP, at 1 and 32 clients, interleaved; and where the experiment's row lock binds (SPEC §14.2:
admissions to one experiment are counted under that lock): the count's cost as a study grows."""

from __future__ import annotations

import json
import statistics
import threading
import time
import uuid

from sqlalchemy import text

from bench.harness import ROUNDS, Series, goal, load, notes, rotated, row
from devtools.stack import Stack

# Two conditions, no cap and no quota: every new guest is a new participant, admitted and balanced.
CONDITIONS = [{"name": "a"}, {"name": "b"}]
# Studies of this many participants for the cost of the count under the lock (in process).
SIZES = (1_000, 10_000)


def configure(engine, experiment_id: str) -> str:
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO experiments (id, config) VALUES (:id, CAST(:config AS jsonb))"),
            {"id": experiment_id, "config": json.dumps({"experimentId": experiment_id, "conditions": CONDITIONS})},
        )
    return experiment_id


def bench_studies_admission(stack: Stack, engine) -> None:
    url = f"{stack.env()['FUNCTIONS_URL']}/create_session"
    run = uuid.uuid4().hex[:8]
    configured_ids: list[str] = []
    for clients in (1, 32):
        series = {key: Series() for key in ("unconfigured", "configured")}
        waits: list[tuple[float, float]] = []
        for round_ in range(5 if clients == 32 else ROUNDS):
            # Each round a new study (at most a few thousand participants, as most are): what the
            # count under the lock costs as a study grows is measured apart, below.
            configured_ids.append(configure(engine, f"bench-studies-{run}-{clients}-{round_}"))
            experiments = {"unconfigured": "bench", "configured": configured_ids[-1]}
            for key in rotated(list(series), round_):
                sampler = LockSampler(engine) if key == "configured" and clients == 32 else None
                result = load(
                    url,
                    clients,
                    mode="new",
                    experiment=experiments[key],
                    **({"count": 2000, "seconds": 3.0} if clients == 32 else {}),
                )
                if sampler is not None:
                    waits.append(sampler.stop())
                series[key].add(result["latencies"], result["elapsed"])
                bad = {s: n for s, n in result["statuses"].items() if s != "201"}
                if bad:
                    notes.append(f"studies admission, {key} x{clients}: non-201 answers {bad}")
        plain, configured = series["unconfigured"], series["configured"]
        ratio = configured.ratio(plain)
        row(
            "create_session, new guests, unconfigured experiment (HTTP)",
            clients,
            plain.latencies,
            plain.throughput,
            "1.00",
        )
        row(
            "create_session, new guests, configured experiment, 2 conditions (HTTP)",
            clients,
            configured.latencies,
            configured.throughput,
            f"{ratio:.2f} of unconfigured",
        )
        if clients == 1:
            notes.append(
                "studies admission at 1 client: median create_session "
                f"{1000 * statistics.median(plain.latencies):.2f} ms unconfigured, "
                f"{1000 * statistics.median(configured.latencies):.2f} ms configured (2 conditions): the "
                "configured path is one transaction: the experiment's row FOR UPDATE, the participant with "
                "the experiment's places, create_session's statement, the assignment, COMMIT (an instance "
                "that has not met the experiment yet runs the unconfigured statement first, which answers "
                "'configured' and writes nothing)."
            )
        else:
            goal(
                f"create_session into a configured experiment with 2 conditions >= 0.8 of an unconfigured "
                f"one's throughput at 32 clients: {ratio:.3f}",
                ratio >= 0.8,
            )
            waiting = statistics.mean(w for w, _ in waits)
            active = statistics.mean(a for _, a in waits)
            notes.append(
                "studies admission at 32 clients: PostgreSQL's client backends sampled every 10 ms during the "
                f"configured rounds: {active:.1f} active on average, {waiting:.1f} of them waiting for a lock "
                "(the experiment's row: admissions to one experiment run one at a time, from its FOR UPDATE "
                "to its COMMIT; the other requests of the 8 threads wait there)."
            )
    with engine.connect() as conn:
        counts = conn.execute(
            text(
                "SELECT experiment_id, count(*) FILTER (WHERE condition = 'a') AS a, "
                "count(*) FILTER (WHERE condition = 'b') AS b FROM assignments "
                "WHERE experiment_id = ANY (:ids) GROUP BY experiment_id"
            ),
            {"ids": configured_ids},
        ).all()
    unbalanced = [tuple(c) for c in counts if abs(c.a - c.b) > 1]
    notes.append(
        f"studies admission: {sum(c.a + c.b for c in counts)} participants in {len(counts)} studies, "
        f"{'each balanced (conditions differ by at most one)' if not unbalanced else f'NOT BALANCED: {unbalanced}'}."
    )
    assert not unbalanced, f"conditions not balanced: {unbalanced}"
    count_cost(engine, run)


def count_cost(engine, run: str) -> None:
    """What one new participant's admission counts while it holds the experiment's row
    (experiment_places, sql/013_admission.sql), in process, for studies of SIZES participants each
    with a session in its lease: the floor of the time the row is held, so the ceiling of one
    experiment's admissions per second."""
    costs = []
    for size in SIZES:
        experiment = configure(engine, f"bench-count-{run}-{size}")
        with engine.begin() as conn:
            conn.execute(
                text(
                    "WITH a AS (INSERT INTO assignments (experiment_id, platform, participant_id, condition) "
                    "SELECT :e, 'sona', 'p' || i, CASE WHEN mod(i, 2) = 0 THEN 'a' ELSE 'b' END "
                    "FROM generate_series(1, :n) AS i RETURNING id, condition) "
                    "INSERT INTO sessions (id, experiment_id, assignment_id, condition) "
                    "SELECT gen_random_uuid(), :e, id, condition FROM a"
                ),
                {"e": experiment, "n": size},
            )
        times = []
        with engine.connect() as conn:
            for _ in range(21):
                started = time.perf_counter()
                conn.execute(text("SELECT experiment_places(:e, 60, false)"), {"e": experiment}).scalar_one()
                times.append(time.perf_counter() - started)
            conn.rollback()
        costs.append(f"{size:,} participants {1000 * statistics.median(times):.1f} ms")
    notes.append(
        "studies admission, where the lock binds: a new participant's admission counts the experiment's "
        "participants and their places while it holds the row (experiment_places, median of 21, in process): "
        + ", ".join(costs)
        + ". It grows with the experiment's sessions, so one experiment admits at most 1 / (that count + "
        "the rest of the transaction: three statements and COMMIT) new participants per second, however "
        "many instances serve it; returning participants wait for the row but count nothing, and other "
        "experiments do not wait for it."
    )


class LockSampler:
    """Samples pg_stat_activity every 10 ms in a thread until stop(): the mean count of client
    backends waiting for a lock, and of active ones."""

    def __init__(self, engine):
        self.engine = engine
        self.samples: list[tuple[int, int]] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        query = text(
            "SELECT count(*) FILTER (WHERE wait_event_type = 'Lock'), count(*) FILTER (WHERE state = 'active') "
            "FROM pg_stat_activity WHERE backend_type = 'client backend' AND datname = current_database() "
            "AND pid <> pg_backend_pid()"
        )
        with self.engine.connect() as conn:
            while not self.done.is_set():
                waiting, active = conn.execute(query).one()
                self.samples.append((waiting, active))
                conn.rollback()
                time.sleep(0.01)

    def stop(self) -> tuple[float, float]:
        self.done.set()
        self.thread.join()
        if not self.samples:
            return 0.0, 0.0
        return (
            statistics.mean(w for w, _ in self.samples),
            statistics.mean(a for _, a in self.samples),
        )
