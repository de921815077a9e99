"""The client package's outbox (bench/run.py's section "client outbox"): 1,000 trials recorded in
Debian's Chromium while offline, then the time and the requests until the server holds them all
after the network comes back; and the <script> bundle's size, minified and gzipped (SPEC §15)."""

from __future__ import annotations

import gzip
import time
from pathlib import Path

from bench.harness import goal, log, notes, row
from devtools.stack import ROOT, Stack

DIST = ROOT / "client" / "dist"
CHROMIUM = Path("/usr/bin/chromium")
TRIALS = 1000
PAGE = "/bench-client/"

# A trial's data as jsPsych records it (about 250 bytes of JSON).
RECORD = """async (n) => {
  for (let i = 0; i < n; i++) {
    await study.record({
      rt: 400 + (i % 300), stimulus: `<p style="color: red">GREEN</p>`, response: "f", correct: i % 7 !== 0,
      trial_type: "html-keyboard-response", trial_index: i, time_elapsed: 1000 * i,
      internal_node_id: `0.0-${i}.0`, condition: "incongruent", attempt: 1,
    }, {key: `1:${i}`});
  }
}"""


def bundle_size() -> int:
    """The <script> bundle (package.json's unpkg), minified as built, gzipped at level 9: bytes."""
    return len(gzip.compress((DIST / "visitor-sessions.min.js").read_bytes(), 9))


def bench_client_outbox(stack: Stack) -> None:
    size = bundle_size()
    row("client: <script> bundle, minified + gzipped", "-", None, None, f"{size / 1024:.1f} KiB", n=1)
    goal(
        f"the client's <script> bundle is at most 12 KiB minified and gzipped: {size / 1024:.1f} KiB", size <= 12 * 1024
    )
    if not CHROMIUM.exists():
        notes.append(f"client outbox: skipped ({CHROMIUM} is missing: apt-get install chromium)")
        return
    from playwright.sync_api import sync_playwright

    from tests.e2e.test_browser import CHROMIUM_ARGS

    functions = stack.env()["FUNCTIONS_URL"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context()
            # The page and the bundle from the functions' own origin, as make dev serves pages.
            context.route(f"{functions}{PAGE}**", lambda route: serve(route, functions))
            page = context.new_page()
            page.goto(f"{functions}{PAGE}index.html")
            page.evaluate(
                "async (url) => { window.study = await VisitorSessions.start("
                "{functionsUrl: url, experimentId: 'bench-client'}); }",
                functions,
            )
            context.set_offline(True)
            recorded = time.perf_counter()
            page.evaluate(RECORD, TRIALS)
            recording = time.perf_counter() - recorded
            assert page.evaluate("study.pending()") == TRIALS
            sent: list[str] = []
            page.on(
                "request",
                lambda request: sent.append(request.url) if request.url.endswith("/submit_response") else None,
            )
            started = time.perf_counter()
            context.set_offline(False)
            page.evaluate("study.flush()")
            wall = time.perf_counter() - started
            count = page.evaluate("study.pending()")
            assert count == 0, count
        finally:
            browser.close()
    requests = len(sent)
    row(
        f"client: {TRIALS} recorded trials drain after reconnect",
        1,
        [wall],
        TRIALS / wall,
        f"{requests} requests ({requests / TRIALS:.3f} per trial)",
        n=TRIALS,
    )
    goal(f"{TRIALS} trials drain within 2 s of reconnecting: {wall:.2f} s", wall <= 2.0)
    goal(f"at most 1/50 of one request per trial ({TRIALS // 50}): {requests}", requests <= TRIALS // 50)
    notes.append(
        f"client outbox: recording {TRIALS} trials offline into IndexedDB took {recording:.2f} s (not timed above)"
    )
    log(f"client outbox: {wall:.2f} s, {requests} requests, bundle {size} bytes gzipped")


def serve(route, functions: str) -> None:
    path = route.request.url[len(functions) + len(PAGE) :].split("?", 1)[0]
    if path == "index.html":
        body = '<!doctype html><meta charset="utf-8"><script src="visitor-sessions.min.js"></script>'
        return route.fulfill(status=200, content_type="text/html", body=body)
    file = DIST / path
    if file.is_file() and file.resolve().parent == DIST.resolve():
        return route.fulfill(status=200, content_type="text/javascript", body=file.read_bytes())
    route.fulfill(status=404, body="")
