"""Each function deploys on its own: `functions-framework --target NAME` serves it, logs
are Cloud Logging JSON with the request's trace, and nothing heavy loads at import."""

import json
import os
import subprocess
import sys

import requests

from devtools.ports import free_port
from devtools.processes import ManagedProcess
from devtools.stack import ROOT
from tests.support import new_guest_key


def test_function_served_alone_by_functions_framework(stack, db, tmp_path):
    port = free_port()
    log_path = tmp_path / "create_session.log"
    server = ManagedProcess(
        "functions-framework",
        [sys.executable, "-m", "functions_framework", "--target", "create_session", "--source", "main.py",
         "--port", str(port), "--host", "127.0.0.1"],
        # DEBUG: the "created session" line below is a DEBUG line (shared/visitors.py).
        log_path, env={**os.environ, **stack.env(), "PYTHONUNBUFFERED": "1", "LOG_LEVEL": "DEBUG"}, cwd=ROOT,
    ).start(lambda: requests.get(f"http://127.0.0.1:{port}/", timeout=1).status_code == 405)
    try:
        response = requests.post(f"http://127.0.0.1:{port}/", json={"experimentId": "alone"},
                                 headers={"X-Guest-Key": new_guest_key(),
                                          "X-Cloud-Trace-Context": "4bf92f3577b34da6a3ce929d0e0e4736/1;o=1"},
                                 timeout=30)
        assert response.status_code == 201
        assert response.json()["visitorNumber"] == 1
    finally:
        server.stop()

    entries = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    (created,) = [e for e in entries if e["message"] == "created session"]
    assert created["severity"] == "DEBUG"
    assert created["logging.googleapis.com/trace"] == "projects/demo-visitors/traces/4bf92f3577b34da6a3ce929d0e0e4736"
    assert created["sessionId"] == response.json()["sessionId"]


def test_importing_main_connects_to_nothing_and_loads_no_cloud_sql_connector():
    code = ("import sys, main; print(sorted(m for m in sys.modules if m.startswith("
            "('google.cloud.sql', 'firebase_admin.auth', 'pgserver'))))")
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                            env=env)
    assert result.returncode == 0, result.stderr  # no settings needed to import
    assert result.stdout.strip() == "[]"
