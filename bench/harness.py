"""The benchmarks' harness: what every section of `make bench` (bench/run.py) measures with and
reports to. The timing (the load generator's runs, Series of interleaved rounds, threads timed
in this process, the CPU of a server's process group), the table's rows, the goals and the
notes, the log, the stack's start-up and the servers started beside it, the sections run in
turn, and the results file. Sections import this module; it imports no section."""

from __future__ import annotations

import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT))

from devtools.ports import free_port  # noqa: E402
from devtools.processes import ManagedProcess  # noqa: E402
from devtools.stack import Stack  # noqa: E402

# As devtools.stack.FunctionsServer serves the product.
WORKERS, THREADS = 1, 8
GUNICORN = ["--workers", str(WORKERS), "--threads", str(THREADS), "--timeout", "0", "--graceful-timeout", "5"]

rows: list[list[str]] = []
notes: list[str] = []
goals: list[str] = []
# The noop function's throughput at 32 clients (bench/http_load.py's bench_http), which the
# database section compares its ceiling with; None until that section has run.
HTTP_CEILING_32: float | None = None


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def row(name: str, clients, latencies: list[float] | None, throughput: float | None, ratio: str, n=None) -> None:
    def ms(v):
        return f"{v * 1000:.1f}" if v is not None else "-"

    median = statistics.median(latencies) if latencies else None
    p99 = pct(latencies, 0.99) if latencies else None
    rows.append(
        [
            name,
            str(clients),
            str(n if n is not None else (len(latencies) if latencies else "-")),
            ms(median),
            ms(p99),
            f"{throughput:.0f}" if throughput else "-",
            ratio,
        ]
    )


def goal(text: str, met: bool) -> None:
    goals.append(f"- {'MET' if met else 'MISSED'}: {text}")


def serve(name: str, app: str, env: dict, workdir: Path, ready_path: str) -> tuple[ManagedProcess, str]:
    port = free_port()
    command = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", *GUNICORN, app]
    url = f"http://127.0.0.1:{port}"
    process = ManagedProcess(name, command, workdir / f"{name}.log", env={**os.environ, **env}, cwd=ROOT)
    process.start(lambda: requests.get(f"{url}/{ready_path}", timeout=1).status_code < 500)
    return process, url


def _proc_stats():
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                raw = open(f"/proc/{entry}/stat").read()
            except OSError:
                continue
            fields = raw[raw.rindex(")") + 2 :].split()
            # fields[1] ppid, fields[2] pgrp, fields[11] utime, fields[12] stime (clock ticks)
            yield int(entry), int(fields[1]), int(fields[2]), int(fields[11]) + int(fields[12])


class CpuMeter:
    """CPU seconds used by a server's process group (gunicorn master and workers), from /proc.
    PostgreSQL's share is not measured: backends that exit take their CPU time with them."""

    def __init__(self, pgid: int):
        self.pgid = pgid
        self.tick = os.sysconf("SC_CLK_TCK")

    def read(self) -> float:
        return sum(ticks for _, _, pgrp, ticks in _proc_stats() if pgrp == self.pgid) / self.tick


ROUNDS = 3  # every comparison is interleaved over this many rounds; ratios are the median of the rounds
DB_ROUNDS = 5  # the database rounds are short (well under a second each): more of them


def rotated(items: list, by: int) -> list:
    """items, starting at the by-th (modulo their number): each round of a comparison its own order."""
    by %= len(items)
    return items[by:] + items[:by]


def load(
    url: str,
    clients: int,
    mode: str = "new",
    numbers: bool = False,
    addresses: int = 0,
    count: int | None = None,
    seconds: float | None = None,
    experiment: str = "bench",
) -> dict:
    default_count, default_seconds = (100, 1.0) if clients == 1 else (800, 1.5)
    count, seconds = count or default_count, seconds or default_seconds
    command = [
        sys.executable,
        "-m",
        "bench.load",
        url,
        "--clients",
        str(clients),
        "--requests",
        str(count),
        "--seconds",
        str(seconds),
        "--mode",
        mode,
        "--addresses",
        str(addresses),
        "--experiment",
        experiment,
    ] + (["--numbers"] if numbers else [])
    out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise RuntimeError(f"load generator failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout)


class Series:
    """One variant measured over several rounds."""

    def __init__(self):
        self.latencies: list[float] = []
        self.elapsed = 0.0
        self.per_round: list[float] = []
        self.cpu = 0.0
        self.served = 0

    def add(self, latencies: list[float], elapsed: float) -> None:
        self.latencies += latencies
        self.elapsed += elapsed
        self.per_round.append(len(latencies) / elapsed)

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.elapsed

    def ratio(self, other: Series) -> float:
        return statistics.median(a / b for a, b in zip(self.per_round, other.per_round))


def timed_threads(call, threads: int, count: int, seconds: float) -> tuple[list[float], float]:
    latencies: list[float] = []
    lock = threading.Lock()
    remaining = [count]
    deadline = time.perf_counter() + seconds

    def worker():
        while time.perf_counter() < deadline:
            with lock:
                if remaining[0] <= 0:
                    return
                remaining[0] -= 1
            start = time.perf_counter()
            call()
            latencies.append(time.perf_counter() - start)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    started = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return latencies, time.perf_counter() - started


# --- the run: the stack, the sections in turn, the results file ----------------------------------


def bench_only() -> list[str]:
    """BENCH_ONLY="researchers,database": the starts of the names of the sections to run (none: all)."""
    return [part.strip() for part in os.environ.get("BENCH_ONLY", "").split(",") if part.strip()]


def start_stack(workdir: Path) -> Stack:
    log(f"starting a stack under {workdir}")
    # The guest-creation limit off for every section but its own (bench_guest_limit): the load comes
    # from one address, which the limit would refuse (or, raised, make every new guest wait for).
    return Stack.with_free_ports(workdir, fast_postgres=True, guest_limit_per_hour="0").start()


def stop_stack(stack: Stack, servers: list[ManagedProcess | None], workdir: Path) -> None:
    for server in servers:
        if server is not None:
            server.stop()
    stack.stop()
    if os.environ.get("BENCH_KEEP"):
        log(f"kept {workdir} (logs of every server)")
    else:
        shutil.rmtree(workdir, ignore_errors=True)


def run_sections(sections, only: list[str]) -> list[str]:
    """Each (name, section) in order, those whose names start with one of `only` if any; the
    names of those that failed."""
    failed: list[str] = []
    for name, section in sections:
        if only and not any(name.startswith(part) for part in only):
            continue  # BENCH_ONLY="researchers,database": run just those sections
        log(f"{name} ...")
        try:
            section()
        except Exception as error:  # one broken section must not lose the others' results
            notes.append(f"{name}: FAILED ({type(error).__name__}: {error})")
            failed.append(name)
            log(f"{name} failed: {error!r}")
            traceback.print_exc()  # where, for whoever mends it
    return failed


def report(started: float, only: list[str], failed: list[str]) -> int:
    """Print the table, the goals and the notes, write them to bench/results/<date>.md unless the
    run was partial (BENCH_ONLY); the exit code."""
    today = datetime.date.today().isoformat()
    header = (
        f"# Benchmark run {today}\n\n"
        f"Machine: {os.cpu_count()} CPUs, Python {platform.python_version()} ({platform.machine()}, "
        f"{platform.system()}); load average at the end {os.getloadavg()[0]:.1f}; "
        f"gunicorn workers={WORKERS} threads={THREADS}; "
        f"whole run {time.perf_counter() - started:.0f} s.\n\n"
    )
    table = ["| benchmark | clients | n | median ms | p99 ms | per s | ratio |", "|---|---:|---:|---:|---:|---:|---|"]
    table += ["| " + " | ".join(r) + " |" for r in rows]
    text_out = (
        header
        + "\n".join(table)
        + "\n\n## Goals\n\n"
        + "\n".join(goals)
        + "\n\n## Notes\n\n"
        + "\n".join(f"- {n}" for n in notes)
        + "\n"
    )
    print(text_out)
    if only:
        log("BENCH_ONLY: a partial run, not written to bench/results/")
    else:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / f"{today}.md").write_text(text_out)
        log(f"written to bench/results/{today}.md")
    if failed:
        log(f"failed: {', '.join(failed)}")
        return 1
    return 0
