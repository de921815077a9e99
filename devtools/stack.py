"""The local stack, started the same way by `make dev` and by the tests: PostgreSQL, migrations,
the emulators, the functions and the storage-event bridge (docs/design/emulators.md)."""

from __future__ import annotations

import json
import os
import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path

import requests

from devtools.ports import free_port
from devtools.postgres import LocalPostgres
from devtools.processes import ManagedProcess
from devtools.prolific import ProlificStandIn

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "demo-visitors"  # a demo- project: the emulators need no cloud account
FIREBASE_BIN = ROOT / "node_modules" / ".bin" / "firebase"
FIRESTORE_LAUNCHER = ROOT / "devtools" / "firestore_emulator.js"
BUCKET = f"{PROJECT}.appspot.com"  # the Firebase default bucket name of the demo project


def firebase_ports(path: Path = ROOT / "firebase.json") -> dict[str, int]:
    """The emulator ports named in firebase.json (the one place they are set)."""
    emulators = json.loads(path.read_text())["emulators"]
    return {name: spec["port"] for name, spec in emulators.items() if isinstance(spec, dict) and "port" in spec}


def migrate(database_url: str) -> list[str]:
    import sqlalchemy

    from shared.core.db import plain_engine
    from shared.ops.migrate import apply_migrations

    engine = plain_engine(database_url, poolclass=sqlalchemy.pool.NullPool)
    try:
        return apply_migrations(engine)
    finally:
        engine.dispose()


class AuthEmulator:
    """The Firebase Auth emulator of firebase-tools (pure Node.js, no Java).

    keep_accounts: the accounts are exported to workdir/export when it stops (firebase-tools'
    --export-on-exit, on SIGTERM as on Ctrl-C) and imported from there when it starts
    (--import), each with the validSince it had, so a restart of `make dev` keeps every user
    signed in and every revoked token revoked.
    """

    def __init__(self, workdir: Path, port: int, hub_port: int, logging_port: int, keep_accounts: bool = False):
        self.workdir = Path(workdir)
        self.port = port
        self.ports = {"auth": port, "hub": hub_port, "logging": logging_port}
        self.keep_accounts = keep_accounts
        self.process: ManagedProcess | None = None

    @property
    def export_dir(self) -> Path:
        return (self.workdir / "export").resolve()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> AuthEmulator:
        if not FIREBASE_BIN.exists():
            raise RuntimeError("firebase-tools is not installed: run `make install` (npm ci)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = {
            "emulators": {
                "singleProjectMode": True,
                "ui": {"enabled": False},
                **{name: {"host": "127.0.0.1", "port": port} for name, port in self.ports.items()},
            }
        }
        config_path = self.workdir / "firebase.json"
        config_path.write_text(json.dumps(config, indent=2))
        # firebase-tools finds a project's running emulators through a locator file in the temporary
        # folder named by the project (hub.js, getLocatorFilePath: hub-<project>.json); --export-on-exit
        # asks the hub it names. A folder of this emulator's own keeps two stacks of one project (the
        # tests' and a restarted one) from exporting each other's accounts.
        tmp = self.workdir / "tmp"
        tmp.mkdir(exist_ok=True)
        env = {**os.environ, "FIREBASE_CLI_DISABLE_UPDATE_CHECK": "true", "TMPDIR": str(tmp.resolve())}
        command = [
            str(FIREBASE_BIN),
            "emulators:start",
            "--only",
            "auth",
            "--project",
            PROJECT,
            "--config",
            str(config_path),
        ]
        exported: list[dict] | None = None  # the accounts --import loads, as they were exported
        if self.keep_accounts:
            if (self.export_dir / "firebase-export-metadata.json").exists():
                command += ["--import", str(self.export_dir)]
                exported = self.exported_accounts()
            command += ["--export-on-exit", str(self.export_dir)]
        log_path = self.workdir / "auth-emulator.log"
        offset = log_path.stat().st_size if log_path.exists() else 0
        self.process = ManagedProcess("Auth emulator", command, log_path, env=env, cwd=self.workdir)
        self.process.start(lambda: self._ready(log_path, offset, importing=exported is not None), timeout=120)
        if exported:
            try:
                self.restore_valid_since(exported)
            except BaseException:
                self.stop()  # Stack.start never got this emulator to stop it
                raise
        return self

    def _ready(self, log_path: Path, offset: int, importing: bool) -> bool:
        if not requests.get(f"http://{self.host}/", timeout=1).ok:
            return False
        # The port answers before the import is done (lib/emulator/controller.js, startAll: the
        # Auth emulator's importData after startEmulator); "All emulators ready!" comes after it
        # (lib/commands/emulators-start.js, once startAll has resolved).
        return not importing or b"All emulators ready!" in log_path.read_bytes()[offset:]

    def exported_accounts(self) -> list[dict]:
        """The accounts of the last export (the default tenant's: this project has no tenants)."""
        metadata = json.loads((self.export_dir / "firebase-export-metadata.json").read_text())
        if "auth" not in metadata:  # firebase-tools then imports no accounts (controller.js, startAll)
            return []
        accounts = self.export_dir / metadata["auth"]["path"] / "accounts.json"
        return json.loads(accounts.read_text()).get("users", []) if accounts.exists() else []

    def restore_valid_since(self, accounts: list[dict]) -> None:
        """Give each imported account back the validSince it was exported with, so that a restart keeps
        browsers signed in and revoked tokens revoked (docs/design/emulators.md)."""
        url = f"http://{self.host}/identitytoolkit.googleapis.com/v1/projects/{PROJECT}/accounts:update"
        with requests.Session() as http:
            for account in accounts:
                response = http.post(
                    url,
                    json={"localId": account["localId"], "validSince": account.get("validSince") or "0"},
                    headers={"Authorization": "Bearer owner"},
                    timeout=10,
                )
                if not response.ok:
                    raise RuntimeError(
                        f"Auth emulator: could not restore the validSince of imported account "
                        f"{account['localId']}: {response.status_code} {response.text[:200]}"
                    )

    def stop(self) -> None:
        if self.process:
            self.process.stop()


class FirestoreEmulator:
    """@firestore-emulator/server (Node.js, in memory) through devtools/firestore_emulator.js.

    The Firebase CLI's own Firestore emulator downloads a jar when it starts,
    which a machine without internet cannot do; this one ships in node_modules.
    """

    def __init__(self, workdir: Path, port: int, keep_documents: bool = False):
        self.workdir = Path(workdir)
        self.port = port
        # Keep the documents across a stop and start (saved on stop, loaded on start),
        # so that a restart is an outage rather than an empty database.
        self.keep_documents = keep_documents
        self.process: ManagedProcess | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> FirestoreEmulator:
        if not (ROOT / "node_modules" / "@firestore-emulator" / "server").exists():
            raise RuntimeError("@firestore-emulator/server is not installed: run `make install` (npm ci)")
        command = ["node", str(FIRESTORE_LAUNCHER), "--port", str(self.port)]
        if self.keep_documents:
            self.workdir.mkdir(parents=True, exist_ok=True)
            command += ["--data-file", str((self.workdir / "documents.json").resolve())]
        self.process = ManagedProcess(
            "Firestore emulator",
            command,
            self.workdir / "firestore-emulator.log",
            cwd=ROOT,
        ).start(self._ready, timeout=30)
        return self

    def _ready(self) -> bool:
        return requests.get(f"http://{self.host}/", timeout=1).ok

    def all_documents(self, project: str = PROJECT) -> list[dict]:
        """Every document of every collection, in the REST API's JSON shape (name, fields, ...)."""
        response = requests.get(
            f"http://{self.host}/emulator/v1/projects/{project}/databases/(default)/documents", timeout=10
        )
        response.raise_for_status()
        return response.json()["documents"]

    def reset(self, project: str = PROJECT) -> None:
        """Forget every document (the launcher's version of the Firebase emulator's reset)."""
        response = requests.delete(
            f"http://{self.host}/emulator/v1/projects/{project}/databases/(default)/documents", timeout=10
        )
        response.raise_for_status()

    def stop(self) -> None:
        if self.process:
            self.process.stop()


class StorageEmulator:
    """gcp-storage-emulator (PyPI): the Cloud Storage JSON API, with the bucket made at start.

    Objects are kept on disk under workdir/data, so they survive a restart (of
    `make dev`, or in the tests that stop the emulator). It does not evaluate
    security rules, nor enforce ifGenerationMatch / ifMetagenerationMatch, nor
    serve old generations (see README).
    """

    def __init__(self, workdir: Path, port: int, bucket: str = BUCKET):
        self.workdir = Path(workdir)
        self.port = port
        self.bucket = bucket
        self.process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> StorageEmulator:
        self.workdir.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable,
            "-m",
            "gcp_storage_emulator",
            "--data-dir",
            str((self.workdir / "data").resolve()),
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--default-bucket",
            self.bucket,
        ]
        self.process = ManagedProcess(
            "Storage emulator", command, self.workdir / "storage-emulator.log", cwd=self.workdir
        ).start(self._ready, timeout=30)
        return self

    def _ready(self) -> bool:
        return requests.get(f"{self.url}/storage/v1/b/{self.bucket}", timeout=1).ok

    def reset(self) -> None:
        """Delete every object, keeping the bucket."""
        requests.get(f"{self.url}/wipe", params={"keep-buckets": "1"}, timeout=10).raise_for_status()

    def stop(self) -> None:
        if self.process:
            self.process.stop()


class StorageEventBridge:
    """devtools/storage_events.py: new objects in the Storage emulator become CloudEvents (dev only)."""

    def __init__(self, storage_url: str, bucket: str, target: str, log_path: Path, interval: float = 0.2):
        self.command = [
            sys.executable,
            "-m",
            "devtools.storage_events",
            "--storage",
            storage_url,
            "--bucket",
            bucket,
            "--target",
            target,
            "--interval",
            str(interval),
        ]
        self.log_path = Path(log_path)
        self.process: ManagedProcess | None = None

    def start(self) -> StorageEventBridge:
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.process = ManagedProcess("storage event bridge", self.command, self.log_path, env=env, cwd=ROOT)
        self.process.start(lambda: "watching" in self.log_path.read_text()[offset:], timeout=30)
        return self

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

    def start(self) -> FunctionsServer:
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            str(self.workers),
            "--threads",
            str(self.threads),
            "--timeout",
            "0",
            "--graceful-timeout",
            "5",
            # gunicorn 27's control socket has one path per user (~/.gunicorn/gunicorn.ctl): the
            # servers of tests and of make dev would take it from each other. Nothing here uses it.
            "--no-control-socket",
            "devtools.serve:app",
        ]
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
    storage_events: bool = False  # make dev: deliver finalized events for new objects
    # make dev: a local stand-in for Prolific's API (devtools/prolific.py), so that server-side
    # completion (SPEC §14.5) runs locally: PROLIFIC_API_URL and a made-up PROLIFIC_API_TOKEN.
    prolific: bool = False
    # make dev: the Auth emulator's accounts and Firestore's documents are saved when the stack
    # stops and loaded when it starts, as PostgreSQL's and Storage's data always are (all under
    # workdir), so a restart keeps the four stores in step.
    keep_state: bool = False
    # The guest-creation limit (docs/operations.md) the functions get: "" leaves the product's default
    # (200); the tests' stack sets a high one, so that only the limit's own tests meet it.
    guest_limit_per_hour: str = ""
    # The HMAC key of client addresses: a random one per stack (a dev and test secret only).
    guest_limit_key: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    # The key upload tickets are signed with: a random one per stack too (a dev and test secret only).
    upload_ticket_key: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    # The key a study's participants are hashed with in the participation ledger (a dev and test secret).
    participant_key: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    postgres: LocalPostgres | None = None
    auth: AuthEmulator | None = None
    firestore: FirestoreEmulator | None = None
    storage: StorageEmulator | None = None
    functions: FunctionsServer | None = None
    bridge: StorageEventBridge | None = None
    prolific_stand_in: ProlificStandIn | None = None

    @classmethod
    def with_free_ports(cls, workdir: Path, **kwargs) -> Stack:
        names = ("functions", "postgres", "auth", "hub", "logging", "firestore", "storage")
        return cls(workdir=workdir, ports={name: free_port() for name in names}, **kwargs)

    def env(self) -> dict[str, str]:
        """What the functions (and a developer's shell) need to reach this stack."""
        return {
            "DATABASE_URL": self.database_url or "",
            "GOOGLE_CLOUD_PROJECT": PROJECT,
            "FIREBASE_AUTH_EMULATOR_HOST": self.auth.host if self.auth else "",
            "FIRESTORE_EMULATOR_HOST": f"127.0.0.1:{self.ports['firestore']}",
            # With its scheme, as google-cloud-storage expects it.
            "STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{self.ports['storage']}",
            "STORAGE_BUCKET": BUCKET,
            "ALLOWED_ORIGINS": self.allowed_origins,
            "FUNCTIONS_URL": f"http://127.0.0.1:{self.ports['functions']}",
            "GUEST_LIMIT_KEY": self.guest_limit_key,
            "UPLOAD_TICKET_KEY": self.upload_ticket_key,
            "PARTICIPANT_KEY": self.participant_key,
            **({"GUEST_LIMIT_PER_HOUR": self.guest_limit_per_hour} if self.guest_limit_per_hour else {}),
            **(
                {"PROLIFIC_API_URL": self.prolific_stand_in.url, "PROLIFIC_API_TOKEN": self.prolific_stand_in.token}
                if self.prolific_stand_in
                else {}
            ),
        }

    def start(self) -> Stack:
        try:
            if not self.database_url:
                self.postgres = LocalPostgres(
                    self.workdir / "postgres", self.ports.get("postgres"), fast=self.fast_postgres
                ).start()
                self.database_url = self.postgres.url
            migrate(self.database_url)
            self.auth = AuthEmulator(
                self.workdir / "auth",
                self.ports["auth"],
                self.ports["hub"],
                self.ports["logging"],
                keep_accounts=self.keep_state,
            ).start()
            self.firestore = FirestoreEmulator(
                self.workdir / "firestore", self.ports["firestore"], keep_documents=self.keep_state
            ).start()
            self.storage = StorageEmulator(self.workdir / "storage", self.ports["storage"]).start()
            if self.prolific:
                self.prolific_stand_in = ProlificStandIn().start()
            self.functions = FunctionsServer(
                self.ports["functions"], self.env(), self.workdir / "functions.log", workers=self.workers
            ).start()
            if self.storage_events:
                self.bridge = self.event_bridge().start()
        except BaseException:
            self.stop()
            raise
        return self

    def event_bridge(self, interval: float = 0.2) -> StorageEventBridge:
        """A bridge from this stack's Storage emulator to its on_upload_finalized (not yet started)."""
        assert self.storage is not None, "the bridge needs the stack's Storage emulator"
        return StorageEventBridge(
            self.storage.url,
            BUCKET,
            f"{self.env()['FUNCTIONS_URL']}/on_upload_finalized",
            self.workdir / "storage-events.log",
            interval=interval,
        )

    def stop(self) -> None:
        for part in (self.bridge, self.functions, self.prolific_stand_in, self.storage, self.firestore, self.auth):
            if part is not None:
                part.stop()
        if self.postgres is not None:
            self.postgres.stop()
