"""The load generator, run as its own process: N concurrent aiohttp clients
POSTing to one URL on 127.0.0.1, bounded by a request count and a time limit.

    python -m bench.load URL --clients 8 --requests 2000 --seconds 6 --mode new|returning|signed-in

new:       every request carries a fresh guest key (a new visitor each time).
returning: each client has one guest key, used once before timing starts
           (untimed warm-up), so every timed request is a returning guest.
signed-in: every request carries `Authorization: Bearer <ID token>`, the tokens of --tokens
           FILE (one a line) taken in turn, so that the users share the load evenly.
--addresses N: each request carries X-Forwarded-For with one of N client addresses
(198.18.0.0/15, the benchmarking range), as Google's front end would append it; 0 sends none.
--experiment ID: the experimentId of every request (default bench, which is not configured).
Prints one JSON object: latencies (s), status counts, visitor numbers of 201s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import time
from urllib.parse import urlsplit

import aiohttp


def _key() -> str:
    return secrets.token_urlsafe(32)


def _tokens(path: str) -> list[str]:
    with open(path) as lines:
        tokens = [line.strip() for line in lines if line.strip()]
    if not tokens:
        raise SystemExit(f"no ID tokens in {path}")
    return tokens


async def _run(args) -> dict:
    host = urlsplit(args.url).hostname
    if host != "127.0.0.1":
        raise SystemExit(f"refusing to load {host}: 127.0.0.1 only")
    connector = aiohttp.TCPConnector(limit=args.clients)
    timeout = aiohttp.ClientTimeout(total=30)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    numbers: list[int] = []
    body = json.dumps({"experimentId": args.experiment})
    tokens = _tokens(args.tokens) if args.mode == "signed-in" else []
    turn = 0

    def credential() -> str:
        """The next request's guest key or ID token (the mode says which)."""
        nonlocal turn
        if not tokens:
            return _key()
        turn += 1
        return tokens[turn % len(tokens)]

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        keys = [_key() for _ in range(args.clients)]

        def address() -> str:
            n = secrets.randbelow(args.addresses)
            return f"198.{18 + n // 65536}.{n // 256 % 256}.{n % 256}"

        async def post(key: str):
            headers = {"Content-Type": "application/json"}
            if tokens:
                headers["Authorization"] = f"Bearer {key}"
            else:
                headers["X-Guest-Key"] = key
            if args.addresses:
                headers["X-Forwarded-For"] = address()
            async with http.post(args.url, data=body, headers=headers) as response:
                payload = await response.read()
                return response.status, payload

        if args.mode == "returning":  # untimed: make each client's guest exist
            for status, _ in await asyncio.gather(*(post(k) for k in keys)):
                if status != 201:
                    raise SystemExit(f"warm-up answered {status}")
        else:  # warm the connections and the server with throw-away requests
            await asyncio.gather(*(post(credential()) for _ in range(args.clients)))

        remaining = args.requests
        deadline = time.perf_counter() + args.seconds

        async def client(index: int):
            nonlocal remaining
            while remaining > 0 and time.perf_counter() < deadline:
                remaining -= 1
                key = keys[index] if args.mode == "returning" else credential()
                start = time.perf_counter()
                status, payload = await post(key)
                latencies.append(time.perf_counter() - start)
                statuses[status] = statuses.get(status, 0) + 1
                if status == 201 and args.numbers:
                    numbers.append(json.loads(payload)["visitorNumber"])

        started = time.perf_counter()
        await asyncio.gather(*(client(i) for i in range(args.clients)))
        elapsed = time.perf_counter() - started
    return {"latencies": latencies, "elapsed": elapsed, "statuses": statuses, "numbers": numbers}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--mode", choices=("new", "returning", "signed-in"), default="new")
    parser.add_argument("--tokens", help="signed-in: a file of ID tokens, one a line")
    parser.add_argument("--numbers", action="store_true", help="collect visitorNumber of each 201")
    parser.add_argument("--addresses", type=int, default=0, help="client addresses to send as X-Forwarded-For")
    parser.add_argument("--experiment", default="bench", help="the experimentId every request carries")
    args = parser.parse_args(argv)
    if args.mode == "signed-in" and not args.tokens:
        parser.error("--mode signed-in needs --tokens FILE")
    json.dump(asyncio.run(_run(args)), sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
