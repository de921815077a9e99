"""Signed-in users as in production (bench/run.py's section "registered users"): create_session
with RS256 ID tokens verified by firebase-admin, the Auth emulator OFF, against returning guests,
and the Auth API lookups (the revocation check's call to Google) counted.

Google's endpoints are devtools.google_endpoints.GoogleEndpoints in this process: securetoken's
certificates of a local key (the tokens are signed with it) and the Auth API, passed on to the
stack's Auth emulator (which keeps the users) and counted there, where production would call
Google. Two servers of the same stack, each every function under gunicorn as devtools.stack
serves them (bench/registered_server.py points their firebase-admin at the local server):
TOKEN_REVOCATION_CHECK_SECONDS=300 (the default) and 0 (a lookup per request: the behaviour
before the setting). The variants are interleaved over ROUNDS at 32 clients.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.harness import ROOT, ROUNDS, Series, goal, log, notes, row, serve
from devtools.clients import AuthEmulatorClient
from devtools.google_endpoints import GoogleEndpoints, service_account_file, signed_token
from devtools.stack import PROJECT, Stack

USERS = 50
CLIENTS = 32
# The first load of each server: exactly this many requests (warm-up included), every one counted.
COUNTED = 1000


def load(url: str, mode: str, tokens: Path | None, requests: int = 800, seconds: float = 1.5) -> dict:
    """bench/load.py at CLIENTS clients; mode returning (guests) or signed-in (the tokens of `tokens`)."""
    command = [
        sys.executable,
        "-m",
        "bench.load",
        url,
        "--clients",
        str(CLIENTS),
        "--requests",
        str(requests),
        "--seconds",
        str(seconds),
        "--mode",
        mode,
    ] + (["--tokens", str(tokens)] if tokens else [])
    out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        raise RuntimeError(f"load generator failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout)


def bench_registered(stack: Stack, workdir: Path) -> None:
    auth = AuthEmulatorClient(stack.auth.host, PROJECT)
    users = [auth.new_user() for _ in range(USERS)]
    tokens = workdir / "id-tokens.txt"
    # Signed now, valid for an hour: RS256 with the key whose certificate the local server serves.
    tokens.write_text("".join(signed_token(user.uid, email=user.email) + "\n" for user in users))

    servers = {}
    with GoogleEndpoints(auth_emulator=stack.auth.host) as google:
        credentials = service_account_file(workdir / "service-account.json", f"{google.url}/token")
        try:
            for window in ("300", "0"):
                servers[window] = serve(
                    f"registered-{window}",
                    "bench.registered_server:app",
                    {
                        **stack.env(),
                        "FIREBASE_AUTH_EMULATOR_HOST": "",
                        "GOOGLE_ENDPOINTS_URL": google.url,
                        "GOOGLE_APPLICATION_CREDENTIALS": credentials,
                        "TOKEN_REVOCATION_CHECK_SECONDS": window,
                    },
                    workdir,
                    "get_visitor",
                )

            # Lookups per 1,000 requests: each server's first load, 1,000 requests of the 50 users.
            lookups = {}
            for window, (_process, url) in servers.items():
                before = google.lookups
                result = load(f"{url}/create_session", "signed-in", tokens, COUNTED - CLIENTS, seconds=120)
                served = len(result["latencies"]) + CLIENTS
                bad = {s: n for s, n in result["statuses"].items() if s != "201"}
                if bad or served != COUNTED:
                    raise RuntimeError(f"window {window}: {served} requests, non-201 answers {bad}")
                lookups[window] = google.lookups - before

            variants = {
                "guests": ("300", "returning"),
                "signed-in": ("300", "signed-in"),
                "signed-in, 0": ("0", "signed-in"),
            }
            series = {name: Series() for name in variants}
            round_lookups = {name: 0 for name in variants}
            for _ in range(ROUNDS):
                for name, (window, mode) in variants.items():
                    before = google.lookups
                    result = load(f"{servers[window][1]}/create_session", mode, tokens if mode == "signed-in" else None)
                    round_lookups[name] += google.lookups - before
                    series[name].add(result["latencies"], result["elapsed"])
                    series[name].served += len(result["latencies"]) + CLIENTS
                    bad = {s: n for s, n in result["statuses"].items() if s != "201"}
                    if bad:
                        notes.append(f"registered users, {name}: non-201 answers {bad}")
        finally:
            for process, _url in servers.values():
                process.stop()

    guests = series["guests"]
    row("create_session, returning guests (HTTP, emulator off)", CLIENTS, guests.latencies, guests.throughput, "1.00")
    for name, label in (("signed-in", "TOKEN_REVOCATION_CHECK_SECONDS=300"), ("signed-in, 0", "=0, before")):
        ratio = series[name].ratio(guests)
        per_1000 = 1000 * round_lookups[name] / series[name].served
        row(
            f"create_session, signed-in users, RS256, {label} (HTTP)",
            CLIENTS,
            series[name].latencies,
            series[name].throughput,
            f"{ratio:.2f} of guests; {per_1000:.0f} Auth API lookups per 1,000 requests in the timed rounds",
        )
        if name == "signed-in":
            goal(
                f"create_session of signed-in users (RS256, revocation checked) >= 0.8 of returning guests' "
                f"throughput at 32 clients: {ratio:.2f}",
                ratio >= 0.8,
            )
    goal(
        f"Auth API lookups per 1,000 requests of {USERS} signed-in users = {USERS} (the distinct users): "
        f"{lookups['300']} (TOKEN_REVOCATION_CHECK_SECONDS=0: {lookups['0']})",
        lookups["300"] == USERS,
    )
    notes.append(
        f"Registered users: {USERS} users of the Auth emulator, RS256 ID tokens signed by a local key, "
        f"verified by firebase-admin with the emulator off; each server's first {COUNTED} requests made "
        f"{lookups['300']} Auth API lookups (accounts:lookup) with TOKEN_REVOCATION_CHECK_SECONDS=300 and "
        f"{lookups['0']} with 0; in the timed rounds after them, {round_lookups['signed-in']} and "
        f"{round_lookups['signed-in, 0']}. A lookup here goes to the local Auth emulator (a round trip "
        "on this machine); in production it is a round trip to Google."
    )
    log(f"registered users: lookups {lookups}, per round {round_lookups}")
