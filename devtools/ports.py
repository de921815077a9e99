"""Free TCP ports and readiness checks for local servers."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(
    ready: Callable[[], bool], what: str, timeout: float = 60.0, process: subprocess.Popen | None = None, log_path=None
) -> None:
    """Poll `ready` until it is true; fail early if `process` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode}{_tail(log_path)}")
        try:
            if ready():
                return
        except Exception:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{what} was not ready within {timeout:.0f} s{_tail(log_path)}")


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def _tail(log_path) -> str:
    if not log_path:
        return ""
    try:
        with open(log_path, encoding="utf-8", errors="replace") as handle:
            return "; last log lines:\n" + "".join(handle.readlines()[-20:])
    except OSError:
        return ""
