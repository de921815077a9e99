"""The database path alone, in this process, no HTTP (bench/run.py's sections "database path"
and "sequence"): the ceiling's INSERT, the seed design's create_session (bench/seed_style.py) and
the product's, at 1 and 16 threads; their statements and round trips, plans, the server's
execution time and CPU per call; and how fast one sequence hands out numbers."""

from __future__ import annotations

import re
import secrets
import statistics
import threading
import time
import uuid
from pathlib import Path

from sqlalchemy import text

from bench import harness
from bench.harness import DB_ROUNDS, Series, goal, notes, row, timed_threads

# --- the database path alone ---------------------------------------------------------------


class RoundTrips:
    """Counts statements (SQLAlchemy before_cursor_execute, and runs of pg8000's
    prepared statements: shared.core.db.Statements) and server round trips (pg8000
    waits for the server: CoreConnection.handle_messages)."""

    def __init__(self, engine):
        import pg8000.core
        from sqlalchemy import event

        self.statements = 0
        self.trips = 0
        self.on = False
        original = pg8000.core.CoreConnection.handle_messages
        counter = self

        def handle_messages(conn_self, context):
            if counter.on:
                counter.trips += 1
            return original(conn_self, context)

        pg8000.core.CoreConnection.handle_messages = handle_messages

        import pg8000.native

        original_run = pg8000.native.PreparedStatement.run

        def run(statement_self, *args, **kwargs):
            if counter.on:
                counter.statements += 1
            return original_run(statement_self, *args, **kwargs)

        pg8000.native.PreparedStatement.run = run

        @event.listens_for(engine, "before_cursor_execute")
        def _count(*_args, **_kwargs):
            if counter.on:
                counter.statements += 1

    def measure(self, call, n: int = 50) -> tuple[float, float]:
        self.statements = self.trips = 0
        self.on = True
        try:
            for _ in range(n):
                call()
        finally:
            self.on = False
        return self.statements / n, self.trips / n


# What pg8000 declares for create_session's parameters (pg_prepared_statements.parameter_types), so that
# a PREPARE of the file plans as the product's prepared statement does; and the ceiling's.
PARAM_TYPES = {
    "session_id": "uuid",
    "key_hash": "bytea",
    "address_hash": "bytea",
    "guest_limit": "integer",
    "window_seconds": "integer",
    "session_limit": "integer",
    "admitted": "boolean",
    "new_guest_id": "uuid",
    "experiment_id": "text",
    "metadata": "jsonb",
    "id": "uuid",
}


def numbered_parameters(statement: str) -> tuple[list[str], str]:
    """The statement's :name parameters in order of first use, and its text with them as $1, $2, ...
    (what pg8000 sends PostgreSQL for a prepared statement)."""
    names: list[str] = []

    def number(match: re.Match) -> str:
        if match[1] not in names:
            names.append(match[1])
        return f"${names.index(match[1]) + 1}"

    return names, re.sub(r"(?<![:\w]):(\w+)", number, statement)


def sql_literal(value) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bytes):
        return "'\\x" + value.hex() + "'"
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def bench_db(engine) -> None:
    import logging

    from bench.seed_style import CEILING_SQL, ceiling_insert, seed_create_session
    from shared.core.db import single_statement, statement_text
    from shared.visitors.guest_limit import Window
    from shared.visitors.sessions import create_session
    from shared.web.auth import Guest
    from shared.web.models import NewSession

    logging.disable(logging.INFO)  # the product's per-session info lines would drown the table
    request = NewSession(experimentId="bench")

    def product():
        create_session(engine, Guest(secrets.token_bytes(32)), request)

    returning_guests = [Guest(secrets.token_bytes(32)) for _ in range(64)]
    for guest in returning_guests:
        create_session(engine, guest, request)

    def product_returning():
        # A guest seen before: the statement finds it and inserts only the session, as the ceiling does.
        create_session(engine, returning_guests[secrets.randbelow(len(returning_guests))], request)

    def seed():
        seed_create_session(engine, secrets.token_bytes(32))

    def ceiling():
        ceiling_insert(engine)

    counter = RoundTrips(engine)
    for name, call in (
        ("shared.visitors.sessions.create_session", product),
        ("seed-style (5 statements)", seed),
        ("ceiling: one INSERT ... nextval()", ceiling),
    ):
        statements, trips = counter.measure(call)
        notes.append(f"{name}: {statements:.1f} SQL statements and {trips:.1f} server round trips per call.")
    notes.append(
        "Round trips are waits of pg8000 for the server: 1 per execution of a prepared statement (as "
        "shared.core.db.single_statement runs them), plus 1 to prepare it once per connection; unprepared, "
        "3 per statement with parameters and 1 without; BEGIN 1, COMMIT 3."
    )
    variants = (("ceiling", ceiling), ("seed", seed), ("product", product), ("returning", product_returning))
    for call in (ceiling, seed, product):
        call()  # warm every connection path once

    def compare(threads: int) -> dict[str, Series]:
        count, seconds = (300, 1.0) if threads == 1 else (2000, 2.0)
        series = {key: Series() for key, _ in variants}
        for _ in range(DB_ROUNDS):
            for key, call in variants:
                before = time.process_time()
                series[key].add(*timed_threads(call, threads, count, seconds))
                series[key].cpu += time.process_time() - before
        return series

    def cpu(series_of: Series) -> str:
        # The bench process's own CPU (Python: SQLAlchemy, pg8000, the product's code), not PostgreSQL's.
        return f"client {1000 * series_of.cpu / len(series_of.latencies):.2f} CPU ms/call"

    def plans() -> None:
        # The server's own count, on one pooled connection: how often create_session's
        # statement ran on the generic plan, i.e. without being planned again.
        with single_statement(engine) as conn:
            row = conn.connection.execute(
                text(
                    "SELECT generic_plans, custom_plans FROM pg_prepared_statements "
                    "WHERE statement LIKE '%INSERT INTO guests%' ORDER BY generic_plans DESC LIMIT 1"
                )
            ).first()
        if row is not None:
            notes.append(
                f"create_session's prepared statement on one pooled connection: {row.generic_plans} "
                f"executions on the generic plan (not planned again), {row.custom_plans} planned "
                "for their parameters (PostgreSQL plans the first five, then keeps a generic plan "
                "when it costs no more)."
            )

    def guest_params() -> dict:
        return {
            "session_id": str(uuid.uuid4()),
            "experiment_id": "bench",
            "metadata": "{}",
            "key_hash": secrets.token_bytes(32),
            "new_guest_id": str(uuid.uuid4()),
            **Window.off().params(),
            "session_limit": 0,
            "admitted": False,  # an unconfigured experiment, as "bench" is
        }  # as the other sections: the guest-creation limit off

    def ceiling_params() -> dict:
        return {"id": str(uuid.uuid4()), "experiment_id": "bench", "metadata": "{}"}

    def explain() -> None:
        # The server's share, from PostgreSQL itself: execution time of each statement
        # (EXPLAIN ANALYZE, rolled back), median of 100 new guests each; once planned for its
        # parameters (a custom plan, as the first five runs on a connection) and once on the
        # generic plan that the product's prepared statement keeps after those.
        def server_ms(statement: str, params, generic: bool) -> float:
            times = []
            with engine.connect() as conn:
                if generic:
                    names, body = numbered_parameters(statement)
                    conn.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
                    conn.exec_driver_sql(f"PREPARE bench_explain({', '.join(PARAM_TYPES[n] for n in names)}) AS {body}")
                    conn.commit()  # both last as long as the connection: undone below
                for _ in range(100):
                    with conn.begin() as transaction:
                        if generic:
                            values = params()
                            plan = conn.exec_driver_sql(
                                "EXPLAIN (ANALYZE, TIMING OFF, SUMMARY, FORMAT JSON) EXECUTE bench_explain("
                                + ", ".join(sql_literal(values[n]) for n in names)
                                + ")"
                            ).scalar_one()
                        else:
                            plan = conn.execute(
                                text("EXPLAIN (ANALYZE, TIMING OFF, SUMMARY, FORMAT JSON) " + statement), params()
                            ).scalar_one()
                        transaction.rollback()
                    times.append(plan[0]["Execution Time"])
                if generic:
                    conn.exec_driver_sql("DEALLOCATE bench_explain")
                    conn.exec_driver_sql("RESET plan_cache_mode")
                    conn.commit()
            return statistics.median(times)

        for generic, kind in (
            (False, "custom plan, planned for its parameters"),
            (True, "generic plan, as the prepared statement runs"),
        ):
            product_ms = server_ms(statement_text("sessions/create_session_guest"), guest_params, generic)
            ceiling_ms = server_ms(CEILING_SQL, ceiling_params, generic)
            notes.append(
                f"Server execution time per statement (EXPLAIN ANALYZE, {kind}; median of 100 new guests): "
                f"create_session {product_ms:.3f} ms (inserts a guest and a session), ceiling "
                f"{ceiling_ms:.3f} ms (inserts a session): {ceiling_ms / product_ms:.2f}."
            )

    def backend_cpu() -> None:
        # The server's whole CPU per call (Bind, locks, executor, triggers, commit, the socket), from
        # the run time of every backend of the pool (/proc/<pid>/schedstat), one call at a time, five
        # interleaved rounds. The least disturbed by other work on the machine of the measures here.
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
        schedstat = [Path(f"/proc/{pid}/schedstat") for pid in pids]
        comm = [Path(f"/proc/{pid}/comm") for pid in pids]
        if not all(path.exists() and path.read_text().startswith("postgres") for path in comm):
            notes.append("Backend CPU per call: not measured (the server's processes are not readable here).")
            return

        def run_time() -> float:
            return sum(int(path.read_text().split()[0]) for path in schedstat if path.exists()) / 1e6  # ms

        per_call = {key: [] for key, _ in variants}
        for _ in range(DB_ROUNDS):
            for key, call in variants:
                if key == "seed":
                    continue
                before = run_time()
                for _ in range(300):
                    call()
                per_call[key].append((run_time() - before) / 300)
        ceiling_cpu = statistics.median(per_call["ceiling"])
        notes.append(
            "Server CPU per call (all backends' run time, 1 thread, median of 5 rounds of 300): "
            + ", ".join(
                f"{label} {statistics.median(per_call[key]):.3f} ms "
                f"({ceiling_cpu / statistics.median(per_call[key]):.2f})"
                for key, label in (
                    ("ceiling", "ceiling"),
                    ("product", "create_session, new guests"),
                    ("returning", "returning guests"),
                )
            )
            + " (ceiling's / each)."
        )

    for threads in (1, 16):
        series = compare(threads)
        ceil, seed_s, prod = series["ceiling"], series["seed"], series["product"]
        row("DB: ceiling, one INSERT ... nextval()", threads, ceil.latencies, ceil.throughput, f"1.00; {cpu(ceil)}")
        row(
            "DB: seed-style create_session (5 statements)",
            threads,
            seed_s.latencies,
            seed_s.throughput,
            f"{seed_s.ratio(ceil):.2f} of ceiling; {cpu(seed_s)}",
        )
        vs_seed, vs_ceiling = prod.ratio(seed_s), prod.ratio(ceil)
        row(
            "DB: shared.visitors.sessions.create_session",
            threads,
            prod.latencies,
            prod.throughput,
            f"{vs_seed:.2f}x seed; {vs_ceiling:.2f} of ceiling; {cpu(prod)}",
        )
        back = series["returning"]
        row(
            "DB: shared.visitors.sessions.create_session, returning guests (info)",
            threads,
            back.latencies,
            back.throughput,
            f"{back.ratio(ceil):.2f} of ceiling; {cpu(back)}",
        )
        if threads == 16:
            if harness.HTTP_CEILING_32:
                notes.append(
                    f"The database ceiling alone (one INSERT per session, 16 threads, no HTTP) reaches "
                    f"{ceil.throughput / harness.HTTP_CEILING_32:.2f} of the HTTP ceiling's throughput at 32 clients; "
                    f"shared.visitors.sessions.create_session without HTTP reaches "
                    f"{prod.throughput / harness.HTTP_CEILING_32:.2f}."
                )
            goal(f"DB path >= 3x seed-style at 16 threads: {vs_seed:.2f}x", vs_seed >= 3)
            goal(f"DB path >= 0.7 of ceiling at 16 threads: {vs_ceiling:.2f}", vs_ceiling >= 0.7)
    plans()
    explain()
    backend_cpu()


# --- one sequence: how fast nextval hands out numbers, for sizing (bench/README.md, "Scale on paper") ---


def bench_sequence(engine) -> None:
    """The server time of one nextval on a CACHE 1 sequence like visitor_number_seq, from one
    backend in a loop and from 8 at once: where numbering from one sequence would stop scaling."""
    # One backend taking numbers as fast as it can from a sequence like visitor_number_seq
    # (its own, so that the product's numbers stay without gaps): the server time per nextval.
    with engine.connect() as conn:
        conn.execute(text("CREATE SEQUENCE IF NOT EXISTS bench_nextval_seq AS bigint CACHE 1"))
        conn.commit()
        plan = conn.execute(
            text(
                "EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) "
                "SELECT count(nextval('bench_nextval_seq')) FROM generate_series(1, 200000)"
            )
        ).scalar_one()
        conn.rollback()
    per_nextval_us = 1000 * plan[0]["Execution Time"] / 200000

    # The same from 8 backends at once, each taking 50,000 numbers in one statement: what the
    # sequence hands out when many connections take turns on its buffer lock (on 2 cores).
    def take(_index: int) -> None:
        with engine.connect() as conn:
            conn.execute(text("SELECT count(nextval('bench_nextval_seq')) FROM generate_series(1, 50000)"))
            conn.rollback()

    threads = [threading.Thread(target=take, args=(i,)) for i in range(8)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    shared_rate = 8 * 50000 / (time.perf_counter() - started)
    notes.append(
        f"nextval on a CACHE 1 sequence, one backend in a loop: {per_nextval_us:.2f} us of server time "
        f"each (about {1e6 / per_nextval_us:,.0f} numbers/s from one backend); 8 backends at once on this "
        f"machine's 2 cores: {shared_rate:,.0f} numbers/s in all."
    )
