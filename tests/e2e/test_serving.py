"""Each function deploys on its own: `functions-framework --target NAME` serves it, and logs
are Cloud Logging JSON with the request's trace. (What `import main` loads: tests/unit/test_import_main.py.)"""

import json
import os
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
        [
            sys.executable,
            "-m",
            "functions_framework",
            "--target",
            "create_session",
            "--source",
            "main.py",
            "--port",
            str(port),
            "--host",
            "127.0.0.1",
        ],
        # DEBUG: the "created session" line below is a DEBUG line (shared/visitors/sessions.py).
        log_path,
        env={**os.environ, **stack.env(), "PYTHONUNBUFFERED": "1", "LOG_LEVEL": "DEBUG"},
        cwd=ROOT,
    ).start(lambda: requests.get(f"http://127.0.0.1:{port}/", timeout=1).status_code == 405)
    try:
        response = requests.post(
            f"http://127.0.0.1:{port}/",
            json={"experimentId": "alone"},
            headers={"X-Guest-Key": new_guest_key(), "X-Cloud-Trace-Context": "4bf92f3577b34da6a3ce929d0e0e4736/1;o=1"},
            timeout=30,
        )
        assert response.status_code == 201
        assert response.json()["visitorNumber"] == 1
    finally:
        server.stop()

    entries = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    (created,) = [e for e in entries if e["message"] == "created session"]
    assert created["severity"] == "DEBUG"
    assert created["logging.googleapis.com/trace"] == "projects/demo-visitors/traces/4bf92f3577b34da6a3ce929d0e0e4736"
    assert created["sessionId"] == response.json()["sessionId"]
