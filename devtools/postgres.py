"""A real PostgreSQL server from the `pgserver` package, on a TCP port of 127.0.0.1.

pgserver ships the PostgreSQL binaries; this class runs them directly (initdb,
pg_ctl) so that the server listens on TCP, can be stopped and started again
(the fault tests do), and works as root (it then runs as the `pgserver` user).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import warnings
from pathlib import Path

from devtools.ports import free_port


class LocalPostgres:
    def __init__(self, datadir: Path, port: int | None = None, fast: bool = False):
        self.datadir = Path(datadir).resolve()
        self.port = port or free_port()
        # For throwaway test servers: durability off, which PostgreSQL documents
        # as safe only where the data may be lost.
        self.fast = fast
        self._user: str | None = None

    @property
    def url(self) -> str:
        return self.url_for("postgres")

    def url_for(self, database: str) -> str:
        # pgserver's PostgreSQL is built without TLS: say so, and clients skip asking for it.
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}?sslmode=disable"

    def _bin(self, name: str) -> str:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR on import
            from pgserver._commands import POSTGRES_BIN_PATH

        return str(POSTGRES_BIN_PATH / name)

    def _run(self, *args: str, timeout: float = 60) -> None:
        result = subprocess.run(args, capture_output=True, text=True, timeout=timeout, user=self._user)
        if result.returncode != 0:
            raise RuntimeError(f"{Path(args[0]).name} failed: {result.stderr.strip() or result.stdout.strip()}")

    def _prepare(self) -> None:
        self.datadir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            # PostgreSQL refuses to run as root: use pgserver's own helpers to
            # make (once) an unprivileged user that can reach the binaries.
            import pwd
            import stat

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR on import
                from pgserver._commands import POSTGRES_BIN_PATH
                from pgserver.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists

            self._user = user = "pgserver"
            ensure_user_exists(user)
            ensure_prefix_permissions(self.datadir)
            ensure_prefix_permissions(POSTGRES_BIN_PATH)
            readable = stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH
            ensure_folder_permissions(POSTGRES_BIN_PATH, readable)
            ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", stat.S_IRGRP | stat.S_IROTH)
            entry = pwd.getpwnam(user)
            os.chown(self.datadir, entry.pw_uid, entry.pw_gid)
        self.datadir.chmod(0o700)

    def start(self) -> LocalPostgres:
        self._prepare()
        if not (self.datadir / "PG_VERSION").exists():
            self._run(
                self._bin("initdb"),
                "-D",
                str(self.datadir),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-instructions",
            )
        options = f"-h 127.0.0.1 -p {self.port} -k {self.datadir}"
        if self.fast:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run(
            self._bin("pg_ctl"),
            "-D",
            str(self.datadir),
            "-w",
            "-t",
            "60",
            "-l",
            str(self.datadir / "server.log"),
            "-o",
            options,
            "start",
        )
        return self

    def stop(self, mode: str = "fast") -> None:
        if (self.datadir / "postmaster.pid").exists():
            self._run(self._bin("pg_ctl"), "-D", str(self.datadir), "-w", "-m", mode, "stop")

    def restart(self, mode: str = "fast") -> None:
        """Stop (fast: roll back open transactions and disconnect every client) and start again."""
        self.stop(mode)
        self.start()

    def pause(self) -> None:
        """Freeze the server and every backend (SIGSTOP): connections stay open and nothing
        answers, as when the database host hangs or the network drops packets."""
        for pid in self._processes():
            os.kill(pid, signal.SIGSTOP)

    def resume(self) -> None:
        for pid in self._processes():
            os.kill(pid, signal.SIGCONT)

    def _processes(self) -> list[int]:
        postmaster = int((self.datadir / "postmaster.pid").read_text().split()[0])
        children = Path(f"/proc/{postmaster}/task/{postmaster}/children").read_text().split()
        return [postmaster, *map(int, children)]

    def destroy(self) -> None:
        try:
            self.stop(mode="immediate")
        finally:
            shutil.rmtree(self.datadir, ignore_errors=True)
