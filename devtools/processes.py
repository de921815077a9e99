"""Child processes of the local stack: started in their own process group,
logged to a file, waited for, and stopped with everything they spawned."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

from devtools.ports import wait_until


class ManagedProcess:
    def __init__(self, name: str, command: list[str], log_path: Path, env: dict | None = None, cwd: Path | None = None):
        self.name = name
        self.command = command
        self.log_path = Path(log_path)
        self.env = env
        self.cwd = cwd
        self.process: subprocess.Popen | None = None

    def start(self, ready: Callable[[], bool], timeout: float = 90) -> ManagedProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            self.command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self.env,
            cwd=self.cwd,
            start_new_session=True,
        )
        log.close()
        try:
            wait_until(ready, self.name, timeout=timeout, process=self.process, log_path=self.log_path)
        except Exception:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 10) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout)
        except ProcessLookupError:
            pass
