"""Researchers at 1M responses (bench/run.py's section "researchers at 1M responses"):
export_data's CSV over HTTP against COPY of the same statement, its zip, the worker's memory,
and get_study_stats (from the study counters of sql/010_study_counters.sql)."""

from __future__ import annotations

import datetime
import json
import statistics
import threading
import time

import requests
from sqlalchemy import text

from bench.harness import goal, notes, row
from devtools.stack import PROJECT, Stack

# --- researchers: an export against COPY, and the figures at 1M responses ---------------------

RESEARCH_SESSIONS, RESEARCH_RESPONSES_EACH = 100_000, 10  # 1,000,000 responses


def bench_research(stack: Stack, engine) -> None:
    """export_data's CSV of 1M responses over HTTP against COPY of the very same statement
    into /dev/null through pg8000 (the physical limit), with the worker's RSS sampled; and
    get_study_stats at 100k sessions / 1M responses."""
    import psutil

    from devtools.clients import AuthEmulatorClient
    from shared.core.db import plain_engine, statement, statement_text

    admin = plain_engine(stack.database_url)  # no statement or socket timeout: seeding takes a while
    with admin.begin() as conn:
        # experiments too: the sections before this one leave configured studies that get_study_stats would list
        conn.execute(text("TRUNCATE users, guests, sessions, responses, visitor_merges, experiments CASCADE"))
        conn.execute(
            text(
                "INSERT INTO guests (id, key_hash, visitor_number) SELECT gen_random_uuid(), sha256(g::text::bytea), "
                "nextval('visitor_number_seq') FROM generate_series(1, :n) g"
            ),
            {"n": RESEARCH_SESSIONS // 2},
        )
        conn.execute(
            text(  # two sessions per guest, three experiments, over 60 days
                "INSERT INTO sessions (id, visitor_number, guest_id, experiment_id, metadata, created_at) "
                "SELECT gen_random_uuid(), g.visitor_number, g.id, 'study-' || mod(g.visitor_number, 3), "
                "       jsonb_build_object('lang', 'en'), now() - mod(g.visitor_number * 7 + k, 60) * interval '1 day' "
                "FROM guests g, generate_series(1, 2) k"
            )
        )
        conn.execute(
            text(
                "INSERT INTO responses (id, session_id, visitor_number, level, data, created_at) "
                "SELECT gen_random_uuid(), s.id, s.visitor_number, mod(l, 8), "
                "       jsonb_build_object('answer', md5(s.id::text || l), 'ms', l * 137), "
                "       s.created_at + l * interval '1 minute' "
                "FROM sessions s, generate_series(1, :each) l"
            ),
            {"each": RESEARCH_RESPONSES_EACH},
        )
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        # the study counters (sql/010_study_counters.sql) were written by the INSERTs' triggers
        conn.execute(text("VACUUM ANALYZE sessions, responses, session_counts, session_days"))
    total = RESEARCH_SESSIONS * RESEARCH_RESPONSES_EACH

    class Null:
        bytes = 0
        rows = 0

        def write(self, data):
            self.bytes += len(data)
            self.rows += 1

    copy_rates = []
    filter_all = json.dumps(
        {"everything": True, "experiments": [], "withoutExperiment": False, "from": None, "to": None}
    )
    for _ in range(2):
        with engine.connect() as conn:
            conn.execute(statement("db/read_only_snapshot"))
            conn.execute(statement("export/settings"), {"filter": filter_all, "statement_timeout": "3600s"})
            sink = Null()
            cursor = conn.connection.dbapi_connection.cursor()
            start = time.perf_counter()
            cursor.execute(statement_text("export/responses_csv"), stream=sink)
            copy_rates.append(total / (time.perf_counter() - start))
            cursor.close()
            conn.rollback()
    assert sink.rows == total + 1, sink.rows
    token = AuthEmulatorClient(stack.auth.host, PROJECT).researcher(True).id_token
    url = f"{stack.env()['FUNCTIONS_URL']}/export_data"
    headers = {"Authorization": f"Bearer {token}"}
    [worker] = psutil.Process(stack.functions.process.process.pid).children()
    requests.get(url, params={"experimentId": "none"}, headers=headers, timeout=60)  # warm
    idle = worker.memory_info().rss
    peak, done = idle, threading.Event()

    def sample():
        nonlocal peak
        while not done.wait(0.02):
            peak = max(peak, worker.memory_info().rss)

    export_rates, sizes = [], []
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    for _ in range(2):
        start = time.perf_counter()
        with requests.get(url, params={"format": "csv"}, headers=headers, stream=True, timeout=600) as answer:
            assert answer.status_code == 200, answer.text
            size = sum(len(chunk) for chunk in answer.iter_content(chunk_size=None))
        export_rates.append(total / (time.perf_counter() - start))
        sizes.append(size)
    start = time.perf_counter()
    with requests.get(url, headers=headers, stream=True, timeout=600) as answer:
        zipped = sum(len(chunk) for chunk in answer.iter_content(chunk_size=None))
    zip_s = time.perf_counter() - start
    done.set()
    sampler.join()
    copy_rate, export_rate = max(copy_rates), max(export_rates)
    row(
        "COPY of export_responses_csv through pg8000 into /dev/null (1M responses)",
        1,
        None,
        copy_rate,
        "the physical limit",
        n=total,
    )
    row(
        "export_data format=csv, 1M responses, over HTTP",
        1,
        None,
        export_rate,
        f"{export_rate / copy_rate:.2f} of COPY",
        n=total,
    )
    row(
        "export_data zip (4 tables, each by COPY, 1M responses, 100k sessions)",
        1,
        [zip_s],
        None,
        f"{zipped / 1e6:.0f} MB zipped",
        n=total,
    )
    growth = (peak - idle) / 2**20
    notes.append(
        f"export: responses.csv of 1M responses is {sizes[0] / 1e6:.0f} MB; the functions worker's RSS "
        f"{idle / 2**20:.0f} MB idle, {peak / 2**20:.0f} MB at most during the exports (+{growth:.1f} MB)."
    )
    goal(f"export_data CSV >= 0.5 of COPY: {export_rate / copy_rate:.2f}", export_rate / copy_rate >= 0.5)
    goal(f"export peak memory < 100 MB above idle: +{growth:.1f} MB", growth < 100)

    stats_url = f"{stack.env()['FUNCTIONS_URL']}/get_study_stats"
    latencies, figures = timed_stats(stats_url, headers)
    assert sum(e["responses"] for e in figures) == total and sum(e["sessions"] for e in figures) == RESEARCH_SESSIONS, [
        (e["experimentId"], e["sessions"], e["responses"]) for e in figures
    ]
    median = statistics.median(latencies)
    row(
        "get_study_stats, 3 experiments, 100k sessions / 1M responses, over HTTP",
        1,
        latencies,
        None,
        f"{median * 1000:.0f} ms of 250 ms goal",
        n=len(latencies),
    )
    goal(f"get_study_stats median < 250 ms at 1M responses: {median * 1000:.0f} ms", median < 0.25)
    configured = _configured_study_stats(admin, stats_url, headers)
    row(
        "get_study_stats, the same study configured (2 conditions, 50k participants, half completed), over HTTP",
        1,
        configured,
        None,
        f"{statistics.median(configured) / median:.2f} x unconfigured",
        n=len(configured),
    )
    params = {
        "everything": True,
        "experiments": [],
        "without_experiment": False,
        "since": datetime.date.today() - datetime.timedelta(days=29),
        "now": datetime.datetime.now(datetime.UTC),
    }
    with admin.begin() as conn:
        conn.execute(statement("stats/work_mem"))
        for name in ("stats/figures",):
            plan = conn.execute(text("EXPLAIN (ANALYZE, TIMING OFF, SUMMARY ON) " + statement_text(name)), params)
            lines = [r[0] for r in plan]
            took = next((line for line in lines if line.startswith("Execution Time")), "")
            notes.append(
                f"plan of {name} ({took}): "
                + " / ".join(line.strip() for line in lines if "->" in line or line[:1].isalpha())[:1200]
            )
    admin.dispose()


def timed_stats(stats_url: str, headers: dict) -> tuple[list[float], list[dict]]:
    """Seven calls of get_study_stats: their latencies, and the last answer's experiments."""
    latencies = []
    for _ in range(7):
        start = time.perf_counter()
        answer = requests.get(stats_url, headers=headers, timeout=60)
        latencies.append(time.perf_counter() - start)
        assert answer.status_code == 200, answer.text
    return latencies, answer.json()["experiments"]


def _configured_study_stats(admin, stats_url: str, headers: dict) -> list[float]:
    """get_study_stats with the three experiments configured (SPEC §14.7: their study figures):
    two conditions, one assignment per guest and experiment, every other participant's sessions
    completed, a few test runs; 7 calls. The study is put back as it was afterwards."""
    with admin.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO experiments (id, config) SELECT 'study-' || e, jsonb_build_object('experimentId', "
                '\'study-\' || e, \'conditions\', \'[{"name": "a"}, {"name": "b"}]\'::jsonb) '
                "FROM generate_series(0, 2) e"
            )
        )
        conn.execute(
            text(
                "INSERT INTO assignments (experiment_id, guest_id, condition) SELECT DISTINCT s.experiment_id, "
                "s.guest_id, CASE WHEN mod(s.visitor_number, 2) = 0 THEN 'a' ELSE 'b' END FROM sessions s"
            )
        )
        conn.execute(
            text(
                "UPDATE sessions s SET assignment_id = a.id, condition = a.condition, "
                "completed_at = CASE WHEN mod(s.visitor_number, 2) = 0 THEN s.created_at + interval '20 minutes' END, "
                "outcome = CASE WHEN mod(s.visitor_number, 2) = 0 THEN 'completed' END, test = s.visitor_number < 50 "
                "FROM assignments a WHERE a.guest_id = s.guest_id AND a.experiment_id = s.experiment_id"
            )
        )
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE sessions, assignments, experiments"))
    latencies, figures = timed_stats(stats_url, headers)
    listed = [(e["experimentId"], len(e["conditions"] or {})) for e in figures]
    assert listed == [(f"study-{e}", 2) for e in range(3)], listed
    with admin.begin() as conn:
        conn.execute(
            text(
                "UPDATE sessions SET assignment_id = NULL, condition = NULL, completed_at = NULL, outcome = NULL, "
                "test = false WHERE assignment_id IS NOT NULL OR test"
            )
        )
        conn.execute(text("DELETE FROM assignments"))
        conn.execute(text("DELETE FROM experiments"))
    return latencies
