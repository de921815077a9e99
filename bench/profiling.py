"""Where the time of one create_session goes (bench/run.py's section "profile of
create_session"): CPU per request in process, noop against create_session, and a cProfile by
package."""

from __future__ import annotations

import re
import secrets
import time
from pathlib import Path

from bench.harness import ROOT, notes

# --- where the time of one create_session goes ----------------------------------------------


def profile_create_session(n: int = 300) -> None:
    """cProfile of n create_session requests through functions-framework's own app
    (Flask test client, in this process, same database): CPU time by package."""
    import cProfile
    import logging
    import pstats

    from functions_framework import create_app

    logging.disable(logging.INFO)
    client = create_app("create_session", str(ROOT / "main.py")).test_client()
    body = {"experimentId": "bench"}
    client.post("/", json=body, headers={"X-Guest-Key": secrets.token_urlsafe(32)})  # warm

    # CPU per request without the profiler and without HTTP: the do-nothing function's app
    # against create_session's, in this process (what the HTTP ratio is made of).
    noop_client = create_app("noop", str(ROOT / "bench" / "noop.py")).test_client()

    def cpu_ms(app_client, requests_: int = 500) -> float:
        posts = [secrets.token_urlsafe(32) for _ in range(requests_)]
        started = time.process_time()
        for key in posts:
            app_client.post("/", json=body, headers={"X-Guest-Key": key})
        return 1000 * (time.process_time() - started) / requests_

    cpu_ms(noop_client, 50)
    noop_cpu, product_cpu = cpu_ms(noop_client), cpu_ms(client)
    notes.append(
        f"CPU per request in process (functions-framework's app through Flask's test client, no HTTP "
        f"server, no profiler): noop {noop_cpu:.2f} ms, create_session {product_cpu:.2f} ms "
        f"({noop_cpu / product_cpu:.2f}). The DB rows' client CPU per call is the database call's share."
    )
    keys = [secrets.token_urlsafe(32) for _ in range(n)]
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.enable()
    for key in keys:
        r = client.post("/", json=body, headers={"X-Guest-Key": key})
        assert r.status_code == 201, r.data
    profiler.disable()
    per_call = (time.perf_counter() - start) / n
    by_package: dict[str, float] = {}
    for (path, _, func), (_, _, tottime, _, _) in pstats.Stats(profiler).stats.items():
        if "site-packages/" in path:
            package = path.split("site-packages/")[1].split("/")[0]
        elif str(ROOT) in path:
            package = "product: " + path.replace(str(ROOT) + "/", "").split("/")[0]
        elif path == "~":
            m = re.match(r"<method '(\w+)' of '([\w.]+)' objects>", func)
            package = f"builtin {m.group(2)}.{m.group(1)}" if m else f"builtin {func[:40]}"
        else:
            package = "stdlib: " + Path(path).stem
        by_package[package] = by_package.get(package, 0.0) + tottime
    total = sum(by_package.values())
    top = sorted(by_package.items(), key=lambda item: -item[1])[:10]
    notes.append(
        f"Profile of create_session in process (cProfile, {n} new guests through functions-framework's "
        f"app, no HTTP server): {per_call * 1000:.1f} ms per request under the profiler; own time by "
        "package: " + ", ".join(f"{name} {100 * t / total:.0f}%" for name, t in top)
    )
