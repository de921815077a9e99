"""The local stack, started the same way by `make dev` and by the tests:
PostgreSQL (embedded, unless a DATABASE_URL is given), migrations, the Auth
emulator, and every function served by functions-framework under gunicorn.

`make dev` uses the ports of firebase.json; tests use free ports, so both can
run side by side.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import requests

from devtools.ports import free_port
from devtools.postgres import LocalPostgres
from devtools.processes import ManagedProcess

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "demo-visitors"  # a demo- project: the emulators need no cloud account
FIREBASE_BIN = ROOT / "node_modules" / ".bin" / "firebase"


def firebase_ports(path: Path = ROOT / "firebase.json") -> dict[str, int]:
    """The emulator ports named in firebase.json (the one place they are set)."""
    emulators = json.loads(path.read_text())["emulators"]
    return {name: spec["port"] for name, spec in emulators.items() if isinstance(spec, dict) and "port" in spec}


def migrate(database_url: str) -> list[str]:
    import sqlalchemy

    from shared.db import _pg8000_url
    from shared.migrate import apply_migrations

    engine = sqlalchemy.create_engine(_pg8000_url(database_url), poolclass=sqlalchemy.pool.NullPool)
    try:
        return apply_migrations(engine)
    finally:
        engine.dispose()


class AuthEmulator:
    """The Firebase Auth emulator of firebase-tools (pure Node.js, no Java)."""

    def __init__(self, workdir: Path, port: int, hub_port: int, logging_port: int):
        self.workdir = Path(workdir)
        self.port = port
        self.ports = {"auth": port, "hub": hub_port, "logging": logging_port}
        self.process: ManagedProcess | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "AuthEmulator":
        if not FIREBASE_BIN.exists():
            raise RuntimeError("firebase-tools is not installed: run `make install` (npm ci)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = {"emulators": {"singleProjectMode": True, "ui": {"enabled": False},
                                **{name: {"host": "127.0.0.1", "port": port} for name, port in self.ports.items()}}}
        config_path = self.workdir / "firebase.json"
        config_path.write_text(json.dumps(config, indent=2))
        env = {**os.environ, "FIREBASE_CLI_DISABLE_UPDATE_CHECK": "true"}
        self.process = ManagedProcess(
            "Auth emulator",
            [str(FIREBASE_BIN), "emulators:start", "--only", "auth", "--project", PROJECT,
             "--config", str(config_path)],
            self.workdir / "auth-emulator.log", env=env, cwd=self.workdir,
        ).start(self._ready, timeout=120)
        return self

    def _ready(self) -> bool:
        return requests.get(f"http://{self.host}/", timeout=1).ok

    def stop(self) -> None:
        if self.process:
            self.process.stop()


class FunctionsServer:
    """All functions on one port (devtools.serve), under gunicorn as in production."""

    def __init__(self, port: int, env: dict[str, str], log_path: Path, workers: int = 1, threads: int = 8):
        self.port = port
        self.env = env
        self.log_path = log_path
        self.workers = workers
        self.threads = threads
        self.process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "FunctionsServer":
        command = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{self.port}",
                   "--workers", str(self.workers), "--threads", str(self.threads),
                   "--timeout", "0", "--graceful-timeout", "5", "devtools.serve:app"]
        env = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}
        self.process = ManagedProcess("functions server", command, self.log_path, env=env, cwd=ROOT)
        self.process.start(lambda: requests.get(f"{self.url}/get_visitor", timeout=1).status_code == 401)
        return self

    def stop(self) -> None:
        if self.process:
            self.process.stop()


@dataclass
class Stack:
    """Everything `make dev` runs, in one object; tests start their own."""

    workdir: Path
    database_url: str | None = None
    ports: dict[str, int] = field(default_factory=dict)
    allowed_origins: str = ""
    fast_postgres: bool = False
    workers: int = 1
    postgres: LocalPostgres | None = None
    auth: AuthEmulator | None = None
    functions: FunctionsServer | None = None

    @classmethod
    def with_free_ports(cls, workdir: Path, **kwargs) -> "Stack":
        names = ("functions", "postgres", "auth", "hub", "logging", "firestore", "storage")
        return cls(workdir=workdir, ports={name: free_port() for name in names}, **kwargs)

    def env(self) -> dict[str, str]:
        """What the functions (and a developer's shell) need to reach this stack."""
        return {
            "DATABASE_URL": self.database_url or "",
            "GOOGLE_CLOUD_PROJECT": PROJECT,
            "FIREBASE_AUTH_EMULATOR_HOST": self.auth.host if self.auth else "",
            "ALLOWED_ORIGINS": self.allowed_origins,
            "FUNCTIONS_URL": f"http://127.0.0.1:{self.ports['functions']}",
        }

    def start(self) -> "Stack":
        try:
            if not self.database_url:
                self.postgres = LocalPostgres(self.workdir / "postgres", self.ports.get("postgres"),
                                              fast=self.fast_postgres).start()
                self.database_url = self.postgres.url
            migrate(self.database_url)
            self.auth = AuthEmulator(self.workdir / "auth", self.ports["auth"], self.ports["hub"],
                                     self.ports["logging"]).start()
            self.functions = FunctionsServer(self.ports["functions"], self.env(),
                                             self.workdir / "functions.log", workers=self.workers).start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for part in (self.functions, self.auth):
            if part is not None:
                part.stop()
        if self.postgres is not None:
            self.postgres.stop()
