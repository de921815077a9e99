"""`make bench`: start a stack on free ports, run every benchmark, print one
markdown table and write it to bench/results/<date>.md. See bench/README.md.

This module is the order of the sections and what they are given; the harness (timing,
rows, goals, notes, the stack, the results file) is bench/harness.py, each section's
benchmark its own module. BENCH_ONLY="researchers,database" runs the sections whose
names below start so."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from bench.audit import bench_audit
from bench.client_outbox import bench_client_outbox
from bench.cold_start import bench_first_201, bench_import
from bench.database import bench_db, bench_sequence
from bench.harness import bench_only, report, run_sections, serve, start_stack, stop_stack
from bench.http_load import bench_guest_limit, bench_http
from bench.profiling import profile_create_session
from bench.registered import bench_registered
from bench.research import bench_research
from bench.responses import bench_submit_response
from bench.rights import bench_register, bench_withdrawal
from bench.studies_admission import bench_studies_admission
from bench.studies_batches import bench_studies_batches
from bench.studies_completion import bench_complete_session
from bench.uploads import bench_uploads


def main() -> int:
    started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    stack = start_stack(workdir)
    noop = None
    failed: list[str] = []
    only = bench_only()
    try:
        os.environ.update(stack.env())
        # The ceilings' server with the product's pool settings (before the in-process bench's).
        noop, noop_url = serve("noop", "bench.noop_server:app", stack.env(), workdir, "noop")
        os.environ.setdefault("DB_POOL_SIZE", "16")  # the in-process DB bench at 16 threads
        from shared.core.config import DatabaseSettings
        from shared.core.db import make_engine

        engine = make_engine(DatabaseSettings.from_env())

        sections = [
            ("HTTP create_session vs noop", lambda: bench_http(stack, noop, noop_url, engine)),
            ("guest limit on vs off", lambda: bench_guest_limit(stack, workdir, engine)),
            ("studies admission", lambda: bench_studies_admission(stack, engine)),
            ("registered users (RS256, emulator off)", lambda: bench_registered(stack, workdir)),
            ("database path", lambda: bench_db(engine)),
            ("sequence", lambda: bench_sequence(engine)),
            ("import main", bench_import),
            ("first 201", lambda: bench_first_201(stack, workdir)),
            ("register 1000x10", lambda: bench_register(stack, engine)),
            ("on_upload_finalized", lambda: bench_uploads(stack)),
            ("withdrawal 1000x10", lambda: bench_withdrawal(stack, engine)),
            ("submit_response, counters on vs off", lambda: bench_submit_response(engine)),
            ("studies: submit_response batches", lambda: bench_studies_batches(stack)),
            ("complete_session vs submit_response", lambda: bench_complete_session(engine)),
            ("researchers at 1M responses", lambda: bench_research(stack, engine)),
            ("audit at 10k uploads", lambda: bench_audit(stack)),
            ("client outbox", lambda: bench_client_outbox(stack)),
            ("profile of create_session", profile_create_session),
        ]
        failed = run_sections(sections, only)
    finally:
        stop_stack(stack, [noop], workdir)
    return report(started, only, failed)
