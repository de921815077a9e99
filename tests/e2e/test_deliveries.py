"""Prolific completion from the server (SPEC §14.5), against a local HTTP server that speaks
Prolific's documented endpoint (POST /api/v1/submissions/<id>/transition/, `Authorization: Token`):
the one attempt of complete_session, the retries of run_maintenance?task=deliveries (moved in time
by rewriting next_attempt_at, never by sleeping), overlapping runs, an erasure that waits for a
pending delivery, the command, and a token that is never logged."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import text

from devtools.google_endpoints import GoogleEndpoints, certificate
from devtools.ports import free_port
from devtools.prolific import ProlificStandIn
from devtools.stack import ROOT, FunctionsServer
from tests.contract.test_openapi import conforms
from tests.e2e.test_completion import configure
from tests.e2e.test_maintenance import KEY, KID, SCHEDULER, oidc_token
from tests.support import Api, new_guest_key, rows, scalar

TOKEN = "prolific-test-token-0123456789abcdef"
SERVER_CODE = "SRVR0001"
PARTICIPANT_CODE = "C1A2B3C4"
TRANSITION = "/api/v1/submissions/{}/transition/"


@pytest.fixture(scope="module")
def prolific():
    stand_in = ProlificStandIn(token=TOKEN).start()
    yield stand_in
    stand_in.stop()


@pytest.fixture(scope="module")
def google():
    with GoogleEndpoints({KID: certificate(KEY)}) as endpoints:
        yield endpoints


@pytest.fixture(scope="module")
def served(stack, prolific, google, tmp_path_factory):
    """The functions with PROLIFIC_API_TOKEN and the fake's URL, run_maintenance callable by the scheduler."""
    port = free_port()
    audience = f"http://127.0.0.1:{port}/run_maintenance"
    env = {
        **stack.env(),
        "PROLIFIC_API_TOKEN": TOKEN,
        "PROLIFIC_API_URL": prolific.url,
        "MAINTENANCE_INVOKER": SCHEDULER,
        "MAINTENANCE_AUDIENCE": audience,
        "MAINTENANCE_CERTS_URL": f"{google.url}/certs",
    }
    log = tmp_path_factory.mktemp("deliveries") / "functions.log"
    server = FunctionsServer(port, env, log).start()
    server.audience = audience
    server.env_used = env
    yield server
    server.stop()
    assert TOKEN not in log.read_text()  # never logged, by any test of this module


@pytest.fixture
def world(served, prolific, db):
    prolific.reset()
    with db.begin() as conn:
        conn.execute(text("TRUNCATE experiments, assignments, participation_ledger, completion_deliveries CASCADE"))
    configure(
        db,
        "prolific-study",
        platform="prolific",
        prolificServerSide=True,
        outcomes={"completed": {"code": PARTICIPANT_CODE, "serverCode": SERVER_CODE}},
    )
    return Api(served.url)


def participant_session(api: Api, db, submission_id: str = "5f1a2b3c4d5e6f7a8b9c0d1e") -> tuple[str, str]:
    key = new_guest_key()
    participant = {"participantId": uuid.uuid4().hex[:24], "studyId": "S" * 24, "submissionId": submission_id}
    created = api.post("create_session", {"experimentId": "prolific-study", "participant": participant}, guest=key)
    assert created.status_code == 201, created.text
    return key, created.json()["sessionId"]


def finish(api: Api, key: str, session_id: str) -> dict:
    return conforms(api.post("complete_session", {"sessionId": session_id, "responseCount": 0}, guest=key), 201)


def delivery(db, session_id: str):
    found = rows(db, "SELECT *, now() AS now FROM completion_deliveries WHERE session_id = :id", id=session_id)
    return found[0] if found else None


def make_due(db) -> None:
    """The time of the next attempt comes (instead of waiting for it)."""
    with db.begin() as conn:
        conn.execute(text("UPDATE completion_deliveries SET next_attempt_at = now() WHERE delivered_at IS NULL"))


def run_task(served) -> dict:
    answer = requests.post(
        f"{served.audience}?task=deliveries",
        headers={"Authorization": f"Bearer {oidc_token(served.audience)}"},
        timeout=60,
    )
    return conforms(answer, 200)["deliveries"]


def test_the_first_attempt_calls_the_documented_endpoint(world, db, prolific):
    key, session_id = participant_session(world, db, "sub-1")
    done = finish(world, key, session_id)
    # The participant's answer carries its own code, never the researcher's server code.
    assert done["completionCode"] == PARTICIPANT_CODE
    assert done["redirectUrl"] == f"https://app.prolific.com/submissions/complete?cc={PARTICIPANT_CODE}"
    assert SERVER_CODE not in json.dumps(done)
    assert prolific.calls == [
        {
            "path": TRANSITION.format("sub-1"),
            "authorization": f"Token {TOKEN}",
            "content_type": "application/json",
            "body": {"action": "COMPLETE", "completion_code": SERVER_CODE},
        }
    ]
    row = delivery(db, session_id)
    assert row.delivered_at is not None and row.failed_at is None and row.attempts == 1
    assert (row.submission_id, row.completion_code, row.experiment_id) == ("sub-1", SERVER_CODE, "prolific-study")
    # A repeat answers as stored and delivers nothing again.
    assert world.post("complete_session", {"sessionId": session_id, "responseCount": 0}, guest=key).json() == done
    assert len(prolific.calls) == 1


def test_503_then_success_is_delivered_by_the_task_within_a_minute(world, db, prolific, served):
    prolific.answers = [(503, {"error": "unavailable"})]
    key, session_id = participant_session(world, db)
    finish(world, key, session_id)
    row = delivery(db, session_id)
    assert row.delivered_at is None and row.failed_at is None and row.attempts == 1
    assert "503" in row.last_error
    assert 0 < (row.next_attempt_at - row.now).total_seconds() <= 60  # the first retry within a minute
    # Not due yet: a run leaves it.
    assert run_task(served)["delivered"] == 0 and len(prolific.calls) == 1
    make_due(db)
    assert run_task(served) == {"delivered": 1, "retrying": 0, "failed": 0, "forgotten": 0}
    row = delivery(db, session_id)
    assert row.delivered_at is not None and row.attempts == 2 and len(prolific.calls) == 2


def test_waits_grow_up_to_an_hour_and_give_up_after_seven_days(world, db, prolific, served):
    prolific.default = (502, {"error": "bad gateway"})
    key, session_id = participant_session(world, db)
    finish(world, key, session_id)
    waits = []
    for _ in range(9):
        make_due(db)
        run_task(served)
        row = delivery(db, session_id)
        waits.append(round((row.next_attempt_at - row.now).total_seconds()))
    assert waits == sorted(waits) and waits[0] <= 120 and max(waits) == 3600
    assert delivery(db, session_id).attempts == 10 and delivery(db, session_id).failed_at is None
    with db.begin() as conn:
        conn.execute(text("UPDATE completion_deliveries SET created_at = now() - interval '7 days 1 minute'"))
    make_due(db)
    assert run_task(served)["failed"] == 1
    row = delivery(db, session_id)
    assert row.failed_at is not None and row.last_error.startswith("gave up after 7 days")


def test_400_fails_at_once_and_is_not_retried(world, db, prolific, served):
    prolific.answers = [(400, {"error": {"detail": "The completion code is not valid for this study."}})]
    key, session_id = participant_session(world, db)
    finish(world, key, session_id)
    row = delivery(db, session_id)
    assert row.failed_at is not None and row.delivered_at is None and row.last_error.startswith("HTTP 400")
    make_due(db)
    run_task(served)
    assert len(prolific.calls) == 1


def test_already_completed_counts_as_delivered(world, db, prolific):
    prolific.answers = [(400, {"error": {"detail": "Submission is already completed."}})]
    key, session_id = participant_session(world, db)
    finish(world, key, session_id)
    row = delivery(db, session_id)
    assert row.delivered_at is not None and row.failed_at is None


def test_401_keeps_it_pending_and_logs_an_alert(world, db, prolific, served):
    prolific.answers = [(401, {"detail": "Invalid token."})]
    key, session_id = participant_session(world, db)
    before = served.log_path.read_text()
    finish(world, key, session_id)
    row = delivery(db, session_id)
    assert row.delivered_at is None and row.failed_at is None and row.attempts == 1
    new_lines = served.log_path.read_text()[len(before) :]
    alert = [json.loads(line) for line in new_lines.splitlines() if "ALERT" in line]
    assert alert and alert[0]["severity"] == "ERROR" and "PROLIFIC_API_TOKEN" in alert[0]["message"]
    assert TOKEN not in new_lines and "5f1a2b3c4d5e6f7a8b9c0d1e" not in new_lines  # nor the submission id
    make_due(db)
    assert run_task(served)["delivered"] == 1


def test_prolific_down_changes_nothing_of_the_answer_and_it_is_delivered_later(world, db, prolific, served):
    key, session_id = participant_session(world, db)
    prolific.down = True
    done = finish(world, key, session_id)
    assert done["completionCode"] == PARTICIPANT_CODE and done["outcome"] == "completed"
    row = delivery(db, session_id)
    assert row.delivered_at is None and row.attempts == 1 and row.last_error.startswith("no answer from Prolific")
    prolific.down = False
    make_due(db)
    assert run_task(served)["delivered"] == 1
    assert len(prolific.calls) == 1 and delivery(db, session_id).attempts == 2


def test_two_runs_at_once_deliver_each_once(world, db, prolific, served):
    sessions = []
    for i in range(12):
        _, session_id = participant_session(world, db, f"sub-{i}")
        sessions.append(session_id)
    with db.begin() as conn:  # pending deliveries, as complete_session records them
        for i, session_id in enumerate(sessions):
            conn.execute(
                text(
                    "INSERT INTO completion_deliveries (session_id, experiment_id, submission_id, completion_code) "
                    "VALUES (:id, 'prolific-study', :sub, :code)"
                ),
                {"id": session_id, "sub": f"sub-{i}", "code": SERVER_CODE},
            )
    prolific.delay = 0.1  # each call takes a while, so that the runs overlap
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = list(pool.map(lambda _: run_task(served), range(2)))
    assert sum(r["delivered"] for r in runs) == 12
    paths = sorted(call["path"] for call in prolific.calls)
    assert paths == sorted(TRANSITION.format(f"sub-{i}") for i in range(12))  # each exactly once
    assert scalar(db, "SELECT count(*) FROM completion_deliveries WHERE delivered_at IS NOT NULL") == 12


def test_an_erasure_waits_for_a_pending_delivery_then_deletes_it(world, db, prolific, served):
    prolific.answers = [(503, {})]
    key, session_id = participant_session(world, db)
    finish(world, key, session_id)
    delivered_key, delivered_session = participant_session(world, db, "sub-delivered")
    finish(world, delivered_key, delivered_session)
    assert delivery(db, delivered_session).delivered_at is not None

    for guest in (key, delivered_key):
        assert world.post("delete_my_data", {}, guest=guest).status_code == 202
    assert scalar(db, "SELECT count(*) FROM sessions WHERE id IN (:a, :b)", a=session_id, b=delivered_session) == 0
    assert delivery(db, delivered_session) is None  # done: erased with its session
    pending = delivery(db, session_id)
    assert pending is not None and pending.delivered_at is None  # waits
    make_due(db)
    assert run_task(served)["forgotten"] == 1
    assert delivery(db, session_id) is None
    assert prolific.calls[-1]["path"] == TRANSITION.format("5f1a2b3c4d5e6f7a8b9c0d1e")


def test_the_command_lists_and_retries(world, db, prolific, served):
    prolific.answers = [(503, {}), (400, {"detail": "code not valid"})]
    key, session_id = participant_session(world, db, "sub-a")
    finish(world, key, session_id)
    other_key, failed = participant_session(world, db, "sub-b")
    finish(world, other_key, failed)

    def command(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "shared.deliveries", *args],
            cwd=ROOT,
            env=served.env_used,
            capture_output=True,
            text=True,
            timeout=60,
        )

    listed = command("list")
    assert listed.returncode == 0, listed.stderr
    assert "0 delivered, 1 pending, 1 failed" in listed.stdout
    assert session_id in listed.stdout and "sub-a" not in listed.stdout and SERVER_CODE not in listed.stdout
    retried = command("retry")
    assert retried.returncode == 0, retried.stderr
    assert "1 delivered" in retried.stdout
    again = command("retry", "--failed")
    assert again.returncode == 0, again.stderr
    assert "0 failed" in again.stdout and "1 delivered" in again.stdout
    assert scalar(db, "SELECT count(*) FROM completion_deliveries WHERE delivered_at IS NOT NULL") == 2
    assert TOKEN not in listed.stdout + retried.stdout + again.stdout + retried.stderr
