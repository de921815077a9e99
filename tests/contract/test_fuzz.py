"""Fuzzing the running stack with schemathesis, generated from openapi.yaml.

`make test` runs a bounded pass (a few hundred requests, fixed seed, a time cap); `make fuzz`
runs the same with a larger budget (FUZZ_EXAMPLES, FUZZ_PHASES, FUZZ_MAX_TIME, FUZZ_SEED).
Every answer must conform to the document, none may be a 500, and a refused request must
leave every table as it was (tests/contract/fuzz_hooks.py).
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.stack import ROOT
from tests.conftest import ALLOWED_ORIGIN
from tests.contract import fuzz_hooks
from tests.support import new_guest_key, rows

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
        "negative_data_rejection",
        "missing_required_header",
        "unsupported_method",
        "allow_header_conformance",
        # ours, in fuzz_hooks.py
        "refused_request_changes_nothing",
        "generated_token_refused",
    ]
)
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "30"))  # per operation and phase
SEED = int(os.environ.get("FUZZ_SEED", "20261123"))
PHASES = os.environ.get("FUZZ_PHASES", "examples,coverage,fuzzing")
MAX_TIME = os.environ.get("FUZZ_MAX_TIME")  # seconds; phases repeat until it is spent
TIME_CAP = float(os.environ.get("FUZZ_TIME_CAP", "90"))  # the bounded run takes ~10-20 s here
MIN_REQUESTS = int(os.environ.get("FUZZ_MIN_REQUESTS", "300"))


@pytest.fixture
def credentials(api, auth_emulator, tmp_path) -> Path:
    """Real guests and users, each with a session, for the hooks to hand to the fuzzer."""
    guests = []
    for _ in range(3):
        key = new_guest_key()
        guests.append({"key": key, "sessionId": api.post("create_session", {}, guest=key).json()["sessionId"]})
    users = []
    for _ in range(2):
        user = auth_emulator.new_user()
        created = api.post("create_session", {}, token=user.id_token).json()
        users.append({"token": user.id_token, "sessionId": created["sessionId"]})
    anonymous = auth_emulator.sign_up(None)
    claimer, claimed_key = auth_emulator.new_user(), new_guest_key()
    assert api.post("create_session", {}, guest=claimed_key).status_code == 201
    assert api.post("register", {}, token=claimer.id_token, guest=claimed_key).status_code == 201
    # For register: anonymous accounts with a session to claim (X-Anonymous-Token), and
    # claim codes of guests with a session (claimCode); each can be claimed once.
    claimable = []
    for _ in range(3):
        account = auth_emulator.anonymous()
        assert api.post("create_session", {}, token=account.id_token).status_code == 201
        claimable.append({"token": account.id_token})
    codes = []
    for _ in range(3):
        key = new_guest_key()
        assert api.post("create_session", {}, guest=key).status_code == 201
        codes.append(api.post("create_claim_code", {}, guest=key).json()["claimCode"])
    path = tmp_path / "credentials.json"
    researchers = [{"token": auth_emulator.researcher(claim).id_token} for claim in (True, ["fuzz", "a"])]
    path.write_text(
        json.dumps(
            {
                "guests": guests,
                "users": users,
                "anonymous": [{"token": anonymous.id_token}],
                "claimed": [{"key": claimed_key}],
                "claimable": claimable,
                "codes": codes,
                "researchers": researchers,
            }
        )
    )
    return path


def run_schemathesis(stack, credentials: Path, log: Path, workdir: Path) -> subprocess.CompletedProcess:
    command = [
        str(SCHEMATHESIS),
        "run",
        str(ROOT / "openapi.yaml"),
        "--url",
        stack.env()["FUNCTIONS_URL"],
        "--seed",
        str(SEED),
        "--max-examples",
        str(EXAMPLES),
        "--phases",
        PHASES,
        "--workers",
        "1",
        "--checks",
        CHECKS,
        "--request-timeout",
        "30",
    ]
    if MAX_TIME:
        command += ["--max-time", MAX_TIME]
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SCHEMATHESIS_HOOKS": "tests.contract.fuzz_hooks",
        "FUZZ_DATABASE_URL": stack.database_url,
        "FUZZ_CREDENTIALS": str(credentials),
        "FUZZ_ALLOWED_ORIGIN": ALLOWED_ORIGIN,
        "FUZZ_LOG": str(log),
    }
    cap = TIME_CAP + (float(MAX_TIME) if MAX_TIME else 0)
    try:
        # Run in a temporary folder: schemathesis keeps a .schemathesis/ cache in its working directory.
        return subprocess.run(command, env=env, cwd=workdir, capture_output=True, text=True, timeout=cap)
    except subprocess.TimeoutExpired as error:
        pytest.fail(f"the fuzz run took over its cap of {cap:.0f} s; output so far:\n{error.stdout}")


def test_fuzzed_requests_conform_and_refusals_store_nothing(stack, db, credentials, tmp_path):
    log = tmp_path / "requests.jsonl"
    result = run_schemathesis(stack, credentials, log, tmp_path)

    assert result.returncode == 0, f"schemathesis found problems (seed {SEED}):\n{result.stdout[-20000:]}"
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    answers = [entry for entry in entries if "operation" in entry]
    statuses = collections.Counter((answer["operation"], answer["status"]) for answer in answers)
    print(
        f"fuzz: {len(answers)} requests, seed {SEED}; "
        + ", ".join(f"{k[0]} {k[1]}: {v}" for k, v in sorted(statuses.items()))
    )
    assert len(answers) >= MIN_REQUESTS
    assert not [answer for answer in answers if answer["status"] >= 500]
    # The tables were compared around every refused request, not skipped.
    refused = {answer["case"] for answer in answers if answer["status"] >= 400}
    assert refused <= {entry["checked"] for entry in entries if "checked" in entry}
    # The hooks' real credentials reach the code behind authentication, not only 400/401.
    for operation in (
        "POST /create_session",
        "POST /submit_response",
        "GET /get_visitor",
        "POST /register",
        "GET /export_my_data",
        "POST /create_claim_code",
        "GET /get_study_stats",
        "GET /export_data",
    ):
        assert any(200 <= status < 300 for (name, status) in statuses if name == operation), operation
    # The stack's APP_CHECK is off: generated X-Firebase-AppCheck headers were sent, and ignored.
    with_app_check = [answer for answer in answers if answer.get("appCheck")]
    assert with_app_check and any(200 <= answer["status"] < 300 for answer in with_app_check)
    seen = {status for (name, status) in statuses if name == "POST /submit_response"}
    assert {400, 401, 403} <= seen
    # The new header and body field reached the claim, not only the checks in front of it.
    claims = collections.Counter(
        entry["claim"] for entry in answers if entry["operation"] == "POST /register" and 200 <= entry["status"] < 300
    )
    assert claims["anonymous"] >= 1 and claims["code"] >= 1, claims

    # What the accepted requests stored is consistent.
    assert not rows(
        db,
        """SELECT r.id FROM responses r JOIN sessions s ON s.id = r.session_id
                           WHERE r.visitor_number IS DISTINCT FROM s.visitor_number""",
    )
    assert not rows(
        db,
        """SELECT visitor_number FROM (SELECT visitor_number FROM users
                           UNION ALL SELECT visitor_number FROM guests WHERE claimed_by IS NULL) v
                           WHERE visitor_number IS NOT NULL GROUP BY visitor_number HAVING count(*) > 1""",
    )


def test_the_refusal_check_sees_an_update_and_an_insert(stack, db, monkeypatch):
    """The fingerprint behind refused_request_changes_nothing notices any change, not only new rows."""
    monkeypatch.setenv("FUZZ_DATABASE_URL", stack.database_url)
    fuzz_hooks._engine.cache_clear()
    try:
        with db.begin() as conn:
            conn.exec_driver_sql("INSERT INTO users (id, email) VALUES ('u1', 'a@example.com')")
        before = fuzz_hooks.fingerprint()
        with db.begin() as conn:
            conn.exec_driver_sql("UPDATE users SET email = 'b@example.com' WHERE id = 'u1'")
        updated = fuzz_hooks.fingerprint()
        assert updated["users"][0] == before["users"][0] and updated["users"] != before["users"]
        with db.begin() as conn:
            conn.exec_driver_sql("INSERT INTO visitor_merges (from_number, to_number, user_id) VALUES (1, 2, 'u1')")
        assert fuzz_hooks.fingerprint()["visitor_merges"][0] == before["visitor_merges"][0] + 1
        assert fuzz_hooks.fingerprint()["sessions"] == before["sessions"]
    finally:
        fuzz_hooks._engine().dispose()
        fuzz_hooks._engine.cache_clear()
