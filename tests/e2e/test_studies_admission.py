"""Admission to configured experiments and their conditions (SPEC §14.1-14.3), over HTTP against
the stack: exact balance and caps under concurrency, participants across devices and claims,
leases, platform ids, test runs, and refusals that write nothing."""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import text

from devtools.ports import free_port
from devtools.stack import FunctionsServer
from shared.studies.config import parse_config
from shared.studies.participants import Participant, participant_hash
from shared.web.auth import hash_guest_key
from tests.support import Api, assert_error, new_guest_key, register, request_headers, rows, scalar

# What a stored session's study data are made of: every row that admission may write.
STUDY_TABLES = {
    "guests": "id",
    "users": "id",
    "sessions": "id",
    "assignments": "id",
    "session_participants": "session_id",
    "guest_limits": "address_hash",
}


def configure(db, **fields) -> str:
    """A configured experiment (as configure_experiment stores it), with an id of its own."""
    experiment_id = fields.pop("experimentId", f"adm-{uuid.uuid4().hex[:12]}")
    config = parse_config({"experimentId": experiment_id, **fields})
    with db.begin() as conn:
        conn.execute(
            text("INSERT INTO experiments (id, config) VALUES (:id, CAST(:config AS jsonb))"),
            {"id": experiment_id, "config": json.dumps(config.to_json())},
        )
    return experiment_id


def reconfigure(db, experiment_id: str, **fields) -> None:
    config = parse_config({"experimentId": experiment_id, **fields})
    with db.begin() as conn:
        conn.execute(
            text("UPDATE experiments SET config = CAST(:config AS jsonb), updated_at = now() WHERE id = :id"),
            {"id": experiment_id, "config": json.dumps(config.to_json())},
        )


def start(api, experiment_id: str, guest: str | None = None, token: str | None = None, **body) -> requests.Response:
    """create_session into the experiment; a new guest unless a guest key or a token is given.
    Each call its own connection: tests call it from many threads at once."""
    if guest is None and token is None:
        guest = new_guest_key()
    return requests.post(
        api.url("create_session"),
        json={"experimentId": experiment_id, **body},
        headers=request_headers(guest, token, None),
        timeout=60,
    )


def at_once(count: int, call) -> list:
    """call(i) for i in range(count), from `count` threads released together."""
    barrier = threading.Barrier(count)

    def run(i: int):
        barrier.wait()
        return call(i)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


def snapshot(db) -> dict:
    state = {table: rows(db, f"SELECT * FROM {table} ORDER BY {key}") for table, key in STUDY_TABLES.items()}
    state["visitor_number_seq"] = rows(db, "SELECT last_value, is_called FROM visitor_number_seq")
    return state


def conditions_of(db, experiment_id: str) -> Counter:
    return Counter(
        r.condition for r in rows(db, "SELECT condition FROM assignments WHERE experiment_id = :e", e=experiment_id)
    )


def prolific(pid: str, study: str = "study1") -> dict:
    return {"participantId": pid, "studyId": study}


# --- Balance under concurrency ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("clients", "names", "expected"), [(40, ["a", "b"], [20, 20]), (31, ["a", "b", "c"], [11, 10, 10])]
)
def test_simultaneous_new_participants_are_balanced_exactly(api, db, clients, names, expected):
    experiment = configure(db, conditions=[{"name": n} for n in names])

    answers = at_once(clients, lambda _i: start(api, experiment))

    assert [a.status_code for a in answers] == [201] * clients
    answered = Counter(a.json()["condition"] for a in answers)
    assert [answered[n] for n in names] == expected  # ties go to the condition listed first
    assert conditions_of(db, experiment) == answered
    stored = rows(db, "SELECT condition, assignment_id, test FROM sessions WHERE experiment_id = :e", e=experiment)
    assert Counter(r.condition for r in stored) == answered
    assert all(r.assignment_id is not None and not r.test for r in stored)


def test_a_participant_keeps_its_condition_on_reloads_and_other_devices(api, db):
    experiment = configure(db, platform="prolific", conditions=[{"name": "a"}, {"name": "b"}])
    key = new_guest_key()
    first = start(api, experiment, guest=key, participant=prolific("PID1"))
    other = start(api, experiment, participant=prolific("PID2"))  # the other condition
    assert (first.status_code, other.status_code) == (201, 201), first.text
    assert {first.json()["condition"], other.json()["condition"]} == {"a", "b"}

    again = start(api, experiment, guest=key, participant=prolific("PID1"))  # a reload
    elsewhere = start(api, experiment, participant=prolific("PID1"))  # another browser, another guest key
    assert again.status_code == elsewhere.status_code == 201
    assert again.json()["condition"] == elsewhere.json()["condition"] == first.json()["condition"]
    assert elsewhere.json()["guestId"] != first.json()["guestId"]
    assert rows(db, "SELECT count(*) AS n FROM assignments WHERE experiment_id = :e", e=experiment)[0].n == 2
    ids = rows(
        db,
        "SELECT p.platform, p.participant_id, p.study_id FROM session_participants p "
        "JOIN sessions s ON s.id = p.session_id WHERE s.id = :s",
        s=elsewhere.json()["sessionId"],
    )
    assert [tuple(r) for r in ids] == [("prolific", "PID1", "study1")]

    # A guest without platform ids is its own participant, and returns to its condition.
    plain = configure(db, conditions=[{"name": "a"}, {"name": "b"}])
    visitor = new_guest_key()
    conditions = [start(api, plain, guest=visitor).json()["condition"] for _ in range(3)]
    assert len(set(conditions)) == 1
    sessions = api.get("get_visitor", guest=visitor).json()["sessions"]
    assert [s["condition"] for s in sessions] == conditions


def test_two_sona_ids_on_one_guest_key_are_two_participants(api, db):
    experiment = configure(db, platform="sona", maxParticipants=2, conditions=[{"name": "a"}, {"name": "b"}])
    lab_computer = new_guest_key()

    first = start(api, experiment, guest=lab_computer, participant={"participantId": "SONA-1"})
    second = start(api, experiment, guest=lab_computer, participant={"participantId": "SONA-2"})
    third = start(api, experiment, guest=lab_computer, participant={"participantId": "SONA-3"})

    assert (first.status_code, second.status_code) == (201, 201)
    assert [first.json()["condition"], second.json()["condition"]] == ["a", "b"]
    assert first.json()["visitorNumber"] == second.json()["visitorNumber"]  # one guest, one number
    assert_error(third, 409, "study_full")  # two participants admitted
    assert start(api, experiment, guest=lab_computer, participant={"participantId": "SONA-1"}).status_code == 201


def test_after_a_claim_the_users_assignment_wins(api, db, auth_emulator):
    experiment = configure(db, conditions=[{"name": "a"}, {"name": "b"}])
    user = auth_emulator.new_user()
    key = new_guest_key()
    as_guest = start(api, experiment, guest=key)
    as_user = start(api, experiment, token=user.id_token)
    assert (as_guest.json()["condition"], as_user.json()["condition"]) == ("a", "b")

    assert register(api, user, guest=key).status_code in (200, 201)
    later = start(api, experiment, token=user.id_token)
    assert later.json()["condition"] == "b"  # the user's own assignment, not the claimed guest's
    stored = {s["sessionId"]: s["condition"] for s in api.get("get_visitor", token=user.id_token).json()["sessions"]}
    assert stored[as_guest.json()["sessionId"]] == "a"  # a stored session keeps its condition

    # A user with no assignment of its own takes over the guest's it claimed.
    newcomer, guest_key = auth_emulator.new_user(), new_guest_key()
    guest_condition = start(api, experiment, guest=guest_key).json()["condition"]
    assert register(api, newcomer, guest=guest_key).status_code in (200, 201)
    assert start(api, experiment, token=newcomer.id_token).json()["condition"] == guest_condition


# --- Caps and quotas ----------------------------------------------------------------------------


def test_the_cap_is_exact_under_concurrency_and_refusals_take_nothing(api, db):
    experiment = configure(db, maxParticipants=25, conditions=[{"name": "a"}, {"name": "b"}])
    number_before = scalar(db, "SELECT last_value FROM visitor_number_seq")

    answers = at_once(40, lambda _i: start(api, experiment))

    statuses = Counter(a.status_code for a in answers)
    assert statuses == {201: 25, 409: 15}
    for refused in (a for a in answers if a.status_code == 409):
        assert_error(refused, 409, "study_full")
    assert scalar(db, "SELECT last_value FROM visitor_number_seq") == number_before + 25 - 1  # numbers 1..25
    assert scalar(db, "SELECT count(*) FROM guests") == 25
    assert scalar(db, "SELECT coalesce(sum(cardinality(created_at)), 0) FROM guest_limits") == 25
    assert conditions_of(db, experiment) == {"a": 13, "b": 12}


def test_quotas_admit_only_their_sum(api, db):
    experiment = configure(db, maxParticipants=6, conditions=[{"name": "a", "quota": 2}, {"name": "b", "quota": 1}])

    answers = [start(api, experiment) for _ in range(6)]

    assert [a.status_code for a in answers] == [201, 201, 201, 409, 409, 409]
    assert [a.json()["condition"] for a in answers[:3]] == ["a", "b", "a"]
    assert_error(answers[3], 409, "study_full")
    # A condition without a quota is never full.
    reconfigure(db, experiment, maxParticipants=6, conditions=[{"name": "a", "quota": 2}, {"name": "b"}])
    assert start(api, experiment).json()["condition"] == "b"


def test_a_closed_study_refuses_new_sessions_but_serves_stored_ones(api, db):
    experiment = configure(db, conditions=[{"name": "a"}, {"name": "b"}])
    key = new_guest_key()
    stored = start(api, experiment, guest=key, sessionId=str(uuid.uuid4()))
    assert stored.status_code == 201
    reconfigure(db, experiment, active=False, conditions=[{"name": "a"}, {"name": "b"}])
    before = snapshot(db)

    assert_error(start(api, experiment), 409, "study_closed")  # a new visitor
    assert_error(start(api, experiment, guest=key), 409, "study_closed")  # a returning one
    assert snapshot(db) == before

    retry = start(api, experiment, guest=key, sessionId=stored.json()["sessionId"])
    assert retry.status_code == 200 and retry.json() == stored.json()
    response = api.post("submit_response", {"sessionId": stored.json()["sessionId"], "data": {"x": 1}}, guest=key)
    assert response.status_code == 201, response.text


def test_test_runs_pass_admission_and_never_count(api, db, auth_emulator):
    experiment = configure(db, maxParticipants=1, conditions=[{"name": "a"}, {"name": "b"}])
    researcher = auth_emulator.researcher([experiment])

    tests = [start(api, experiment, token=researcher.id_token, test=True) for _ in range(3)]
    assert [t.status_code for t in tests] == [201] * 3
    assert [t.json()["condition"] for t in tests] == ["a", "a", "a"]  # a test run occupies no place
    stored = rows(db, "SELECT test, assignment_id FROM sessions WHERE experiment_id = :e", e=experiment)
    assert [(r.test, r.assignment_id) for r in stored] == [(True, None)] * 3
    assert scalar(db, "SELECT count(*) FROM assignments WHERE experiment_id = :e", e=experiment) == 0

    participant = start(api, experiment)
    assert participant.status_code == 201  # the cap of 1 is still free
    assert_error(start(api, experiment), 409, "study_full")
    assert start(api, experiment, token=researcher.id_token, test=True).status_code == 201  # full: tests still run
    reconfigure(db, experiment, active=False)
    assert start(api, experiment, token=researcher.id_token, test=True).status_code == 201  # closed: too

    before = snapshot(db)
    assert_error(start(api, experiment, test=True), 403, "permission_denied")  # a guest
    assert_error(start(api, experiment, token=auth_emulator.new_user().id_token, test=True), 403, "permission_denied")
    other = auth_emulator.researcher(["another-experiment"])
    assert_error(start(api, experiment, token=other.id_token, test=True), 403, "permission_denied")
    assert snapshot(db) == before


# --- Places: leases and outcomes ----------------------------------------------------------------


def test_a_lapsed_lease_gives_its_place_back(api, db):
    experiment = configure(db, leaseMinutes=30, conditions=[{"name": "a", "quota": 1}])
    key = new_guest_key()
    held = start(api, experiment, guest=key).json()
    assert_error(start(api, experiment), 409, "study_full")

    # A response 10 minutes ago keeps the place although the session started long ago.
    assert api.post("submit_response", {"sessionId": held["sessionId"], "data": 1}, guest=key).status_code == 201
    with db.begin() as conn:
        conn.execute(
            text("UPDATE sessions SET created_at = now() - interval '2 hours' WHERE id = :s"), {"s": held["sessionId"]}
        )
        conn.execute(
            text("UPDATE session_counts SET last_response_at = now() - interval '10 minutes' WHERE session_id = :s"),
            {"s": held["sessionId"]},
        )
    assert_error(start(api, experiment), 409, "study_full")

    with db.begin() as conn:  # its latest activity now 31 minutes ago: past the lease
        conn.execute(
            text("UPDATE session_counts SET last_response_at = now() - interval '31 minutes' WHERE session_id = :s"),
            {"s": held["sessionId"]},
        )
    assert start(api, experiment).json()["condition"] == "a"
    # The participant whose lease lapsed is still admitted when it comes back (SPEC §14.1).
    assert start(api, experiment, guest=key).status_code == 201


def test_completed_sessions_hold_a_place_only_with_outcome_completed(api, db):
    experiment = configure(db, conditions=[{"name": "a", "quota": 1}])
    held = start(api, experiment).json()
    assert_error(start(api, experiment), 409, "study_full")

    def complete(outcome: str) -> None:
        with db.begin() as conn:
            conn.execute(
                text("UPDATE sessions SET completed_at = now(), outcome = :o WHERE id = :s"),
                {"o": outcome, "s": held["sessionId"]},
            )

    complete("completed")
    with db.begin() as conn:  # long ago: a completed session holds its place whatever its age
        conn.execute(
            text("UPDATE sessions SET created_at = now() - interval '3 days' WHERE id = :s"), {"s": held["sessionId"]}
        )
    assert_error(start(api, experiment), 409, "study_full")
    complete("screened_out")
    assert start(api, experiment).status_code == 201


# --- Platform ids and repeat participation -------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "participant", "says"),
    [
        ({"platform": "prolific"}, None, "participant is required"),
        ({"platform": "prolific"}, {"participantId": "P1"}, "participant.studyId is required"),
        ({"platform": "prolific", "prolificServerSide": True}, prolific("P1"), "participant.submissionId"),
        ({"platform": "prolific"}, {"participantId": "P1", "studyId": "S", "hitId": "H"}, "not a prolific field"),
        ({"platform": "sona"}, prolific("P1"), "participant.studyId is not a sona field"),
        ({}, {"participantId": "P1"}, "send no participant"),
        ({"platform": "prolific"}, prolific("P 1"), "must be 1 to 128"),
        ({"platform": "prolific"}, prolific("x" * 129), "must be 1 to 128"),
        ({"platform": "prolific"}, prolific("{{%PROLIFIC_PID%}}"), "study URL was not filled in"),
        ({"platform": "sona"}, {"participantId": "%SURVEY_CODE%"}, "study URL was not filled in"),
        (
            {"platform": "mturk"},
            {
                "participantId": "W1",
                "assignmentId": "ASSIGNMENT_ID_NOT_AVAILABLE",
                "hitId": "H1",
                "turkSubmitTo": "https://www.mturk.com",
            },
            "preview",
        ),
        (
            {"platform": "mturk"},
            {"participantId": "W1", "assignmentId": "A1", "hitId": "H1", "turkSubmitTo": "https://evil.example"},
            "turkSubmitTo",
        ),
    ],
)
def test_platform_ids_that_do_not_fit_are_refused_writing_nothing(api, db, config, participant, says):
    experiment = configure(db, **config)
    before = snapshot(db)

    answer = start(api, experiment, **({} if participant is None else {"participant": participant}))

    error = assert_error(answer, 400, "invalid_argument")
    assert says in error["message"]
    assert "P1" not in error["message"] and "W1" not in error["message"]  # ids are never quoted back
    assert snapshot(db) == before


def test_participant_and_test_need_a_configured_experiment(api, db):
    assert_error(start(api, "never-configured", participant={"participantId": "P1"}), 400, "invalid_argument")
    answer = api.post("create_session", {"participant": {"participantId": "P1"}}, guest=new_guest_key())
    assert_error(answer, 400, "invalid_argument")
    # An unconfigured experimentId is a free label as before; its sessions have no condition.
    key = new_guest_key()
    plain = start(api, "never-configured", guest=key)
    assert plain.status_code == 201 and plain.json()["condition"] is None
    assert api.get("get_visitor", guest=key).json()["sessions"][0]["condition"] is None


def test_a_participant_who_completed_is_refused_without_taking_a_number(api, db, stack, monkeypatch):
    monkeypatch.setenv("PARTICIPANT_KEY", stack.participant_key)
    experiment = configure(db, platform="prolific", conditions=[{"name": "a"}])
    key = new_guest_key()
    start(api, experiment, guest=key, participant=prolific("OTHER"))  # the guest exists; a number taken
    hashes = [
        participant_hash(experiment, Participant(platform="prolific", participant_id="DONE")),
        participant_hash(experiment, Participant(guest_id=uuid.UUID(_guest_id(db, key)))),
    ]
    with db.begin() as conn:
        for digest in hashes:
            conn.execute(
                text("INSERT INTO participation_ledger (experiment_id, participant_hash) VALUES (:e, :h)"),
                {"e": experiment, "h": digest},
            )
    before = snapshot(db)

    assert_error(start(api, experiment, participant=prolific("DONE")), 409, "already_participated")
    assert snapshot(db) == before  # no guest, no number, no count of the guest limit

    repeatable = configure(db, platform="none", conditions=[{"name": "a"}])
    owner = configure(db, conditions=[{"name": "a"}])
    with db.begin() as conn:
        conn.execute(
            text("INSERT INTO participation_ledger (experiment_id, participant_hash) VALUES (:e, :h)"),
            {"e": owner, "h": participant_hash(owner, Participant(guest_id=uuid.UUID(_guest_id(db, key))))},
        )
    assert_error(start(api, owner, guest=key), 409, "already_participated")  # the guest's own hash
    reconfigure(db, owner, allowRepeat=True, conditions=[{"name": "a"}])
    assert start(api, owner, guest=key).status_code == 201
    assert start(api, repeatable, guest=key).status_code == 201


def _guest_id(db, key: str) -> str:
    return str(scalar(db, "SELECT id FROM guests WHERE key_hash = :h", h=hash_guest_key(key)))


def test_a_retry_answers_the_stored_session_with_its_condition(api, db):
    experiment = configure(db, platform="sona", conditions=[{"name": "a"}, {"name": "b"}])
    key, session_id = new_guest_key(), str(uuid.uuid4())
    body = {"sessionId": session_id, "participant": {"participantId": "S9"}}
    first = start(api, experiment, guest=key, **body)
    again = start(api, experiment, guest=key, **body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json() and first.json()["condition"] == "a"
    assert scalar(db, "SELECT count(*) FROM sessions") == 1
    assert_error(start(api, experiment, **body), 409, "conflict")  # someone else's sessionId


# --- Logs ---------------------------------------------------------------------------------------


@pytest.fixture
def logged_server(stack, tmp_path):
    """The functions with every log line on (DEBUG), their log in a file of this test."""
    server = FunctionsServer(free_port(), {**stack.env(), "LOG_LEVEL": "DEBUG"}, tmp_path / "functions.log").start()
    yield server
    server.stop()


def test_no_log_line_carries_a_platform_id(db, stack, logged_server, monkeypatch):
    api = Api(logged_server.url)
    pid, study, submission, sona, worker, assignment, hit = ids = [f"ID{uuid.uuid4().hex[:14]}" for _ in range(7)]
    on_prolific = configure(db, platform="prolific", prolificServerSide=True, maxParticipants=1)
    on_sona = configure(db, platform="sona", conditions=[{"name": "a"}])
    on_mturk = configure(db, platform="mturk", active=False)
    prolific_ids = {"participantId": pid, "studyId": study, "submissionId": submission}

    assert start(api, on_prolific, participant=prolific_ids).status_code == 201
    assert start(api, on_prolific, participant=prolific_ids).status_code == 201  # returning
    assert_error(start(api, on_prolific, participant={**prolific_ids, "participantId": sona}), 409, "study_full")
    assert_error(start(api, on_prolific, participant={**prolific_ids, "hitId": hit}), 400, "invalid_argument")
    assert start(api, on_sona, participant={"participantId": sona}).status_code == 201
    monkeypatch.setenv("PARTICIPANT_KEY", stack.participant_key)
    with db.begin() as conn:
        conn.execute(
            text("INSERT INTO participation_ledger (experiment_id, participant_hash) VALUES (:e, :h)"),
            {"e": on_sona, "h": participant_hash(on_sona, Participant(platform="sona", participant_id=sona))},
        )
    assert_error(start(api, on_sona, participant={"participantId": sona}), 409, "already_participated")
    mturk = {"participantId": worker, "assignmentId": assignment, "hitId": hit, "turkSubmitTo": "https://www.mturk.com"}
    assert_error(start(api, on_mturk, participant=mturk), 409, "study_closed")
    assert_error(start(api, on_mturk, participant={**mturk, "participantId": f"{worker} x"}), 400, "invalid_argument")

    log = logged_server.log_path.read_text()
    assert "refused a new session" in log and "created session" in log  # the lines were written
    assert [i for i in ids if i in log] == []
