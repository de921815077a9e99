"""`make dev`: the whole product on this machine, until Ctrl-C, kept under .local/ across
restarts; `make dev-reset` wipes it (docs/local-development.md)."""

from __future__ import annotations

import os
import shutil
import signal
import sys
from pathlib import Path

from devtools.ports import port_open
from devtools.stack import ROOT, Stack, firebase_ports

LOCAL = ROOT / ".local"
# What make dev keeps under .local/ (Stack.workdir's parts) and make dev-reset wipes together.
STATE = ("postgres", "auth", "firestore", "storage")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["--reset"]:
        return reset()
    if argv:
        print("usage: python -m devtools.dev [--reset]", file=sys.stderr)
        return 2
    ports = firebase_ports()
    ports["functions"] = int(os.environ.get("PORT", "8080"))
    ports["postgres"] = int(os.environ.get("PGPORT_DEV", "54329"))
    busy = [
        f"{name} {port}"
        for name, port in ports.items()
        if port_open(port) and not (name == "postgres" and os.environ.get("DATABASE_URL"))
    ]
    if busy:
        print(
            f"make dev: ports already in use: {', '.join(busy)} (another `make dev`? set PORT, or "
            "change firebase.json)",
            file=sys.stderr,
        )
        return 1
    stack = Stack(
        workdir=LOCAL,
        database_url=os.environ.get("DATABASE_URL") or None,
        ports=ports,
        allowed_origins=os.environ.get(
            "ALLOWED_ORIGINS", f"http://127.0.0.1:{ports['functions']},http://localhost:{ports['functions']}"
        ),
        workers=int(os.environ.get("DEV_WORKERS", "2")),
        storage_events=True,  # stands in for Eventarc: new objects reach on_upload_finalized
        prolific=True,  # stands in for Prolific's API: server-side completion runs locally
        keep_state=True,  # a restart keeps the accounts, documents, rows and objects in step
        # The guest-creation limit from the environment (a load test raises it), and its key.
        guest_limit_per_hour=os.environ.get("GUEST_LIMIT_PER_HOUR", "").strip(),
    )
    if os.environ.get("GUEST_LIMIT_KEY"):
        stack.guest_limit_key = os.environ["GUEST_LIMIT_KEY"]
    # A key of one's own keeps the page's upload tickets valid across restarts of make dev.
    if os.environ.get("UPLOAD_TICKET_KEY"):
        stack.upload_ticket_key = os.environ["UPLOAD_TICKET_KEY"]
    # The same for the participation ledger: who took part in a study is known across restarts
    # (the ledger keeps keyed hashes): the environment's key, else the one kept in .local/.
    stack.participant_key = os.environ.get("PARTICIPANT_KEY") or kept_participant_key()
    # Ctrl-C (SIGINT), a closed terminal and `kill` all stop everything, also while
    # starting; set explicitly, since a shell running `make dev &` ignores SIGINT.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _interrupt)
    try:
        print("make dev: starting PostgreSQL, migrations, emulators and functions…", flush=True)
        stack.start()
        env = stack.env()
        LOCAL.mkdir(exist_ok=True)
        (LOCAL / "dev.env").write_text("".join(f"{k}={v}\n" for k, v in sorted(env.items())))
        url = env["FUNCTIONS_URL"]
        print(
            f"ready: visitor page {url}/ , researcher page {url}/research.html , functions at "
            f"{url}/<function_name>; settings in .local/dev.env; Ctrl-C stops everything",
            flush=True,
        )
        while True:
            signal.pause()
    except KeyboardInterrupt:
        pass
    except RuntimeError as error:
        print(f"make dev: {error}", file=sys.stderr)
        return 1
    finally:
        print("make dev: stopping…", flush=True)
        stack.stop()
    return 0


PARTICIPANT_KEY_FILE = "participant.key"


def kept_participant_key(local: Path = LOCAL) -> str:
    """make dev's PARTICIPANT_KEY: made once, kept in .local/participant.key (wiped by make dev-reset)."""
    import secrets

    path = local / PARTICIPANT_KEY_FILE
    if not path.exists():
        local.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(32))
    return path.read_text().strip()


def reset(local: Path = LOCAL, ports: dict[str, int] | None = None) -> int:
    """Wipe what make dev keeps under `local` (all four stores together), refusing while a
    stack runs on `ports` (make dev's: firebase.json's and PORT)."""
    if ports is None:
        ports = {**firebase_ports(), "functions": int(os.environ.get("PORT", "8080"))}
    running = [f"{name} {port}" for name, port in ports.items() if port_open(port)]
    if running:
        print(
            f"make dev-reset: make dev seems to be running (ports in use: {', '.join(running)}); "
            "stop it with Ctrl-C first",
            file=sys.stderr,
        )
        return 1
    for name in STATE:
        shutil.rmtree(local / name, ignore_errors=True)
    (local / "dev.env").unlink(missing_ok=True)
    (local / PARTICIPANT_KEY_FILE).unlink(missing_ok=True)  # the ledger it hashed was wiped with postgres
    print(f"make dev-reset: wiped .local/{{{','.join(STATE)}}}: the next make dev starts empty")
    return 0


def _interrupt(*_):
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # one Ctrl-C is enough; let the cleanup finish
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
