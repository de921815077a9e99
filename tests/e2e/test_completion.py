"""complete_session (SPEC §14.4): incomplete with the exact stored count, completion at the count,
a repeat answered as stored, another outcome refused, the owner only; outcomes and redirect URLs
per platform; the participation ledger; a completion racing the session's responses.

Experiments are configured and platform ids stored with SQL (the admission and configuration
functions are not what these tests are about); sessions are made with create_session."""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import text

from shared.studies.participants import Participant, participant_hash
from tests.contract.test_openapi import conforms
from tests.support import Api, assert_error, guest_row, new_guest_key, rows, scalar


@pytest.fixture
def studies(db):
    """The stack's database with no experiment, ledger row or delivery of another test."""
    with db.begin() as conn:
        conn.execute(text("TRUNCATE experiments, assignments, participation_ledger, completion_deliveries CASCADE"))
    return db


def configure(db, experiment_id: str, **fields) -> dict:
    """An experiment's configuration, stored as configure_experiment would store it."""
    document = {"experimentId": experiment_id, **fields}
    with db.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO experiments (id, config) VALUES (:id, CAST(:config AS jsonb)) "
                "ON CONFLICT (id) DO UPDATE SET config = excluded.config"
            ),
            {"id": experiment_id, "config": json.dumps(document)},
        )
    return document


def start(api: Api, key: str, experiment_id: str | None = None, responses: int = 0, participant=None) -> str:
    body: dict = {"experimentId": experiment_id} if experiment_id else {}
    if participant:
        body["participant"] = participant
    created = api.post("create_session", body, guest=key)
    assert created.status_code == 201, created.text
    session_id = created.json()["sessionId"]
    for i in range(responses):
        answer = api.post("submit_response", {"sessionId": session_id, "data": {"trial": i}}, guest=key)
        assert answer.status_code == 201, answer.text
    return session_id


def complete(api: Api, key: str, session_id: str, count: int, outcome: str | None = None):
    body: dict = {"sessionId": session_id, "responseCount": count}
    if outcome is not None:
        body["outcome"] = outcome
    return api.post("complete_session", body, guest=key)


def stored_completion(db, session_id: str):
    (row,) = rows(db, "SELECT completed_at, outcome, completion FROM sessions WHERE id = :id", id=session_id)
    return row


def test_incomplete_until_the_count_then_completed_and_a_repeat_answers_as_stored(api, studies):
    key = new_guest_key()
    session_id = start(api, key, "free-label", responses=2)

    refused = conforms(complete(api, key, session_id, 3), 409, "incomplete")
    assert refused["error"]["stored"] == 2
    assert stored_completion(studies, session_id).completed_at is None

    assert api.post("submit_response", {"sessionId": session_id, "data": 3}, guest=key).status_code == 201
    done = conforms(complete(api, key, session_id, 3), 201)
    assert done["sessionId"] == session_id and done["outcome"] == "completed"
    assert done["completionCode"] is None and done["redirectUrl"] is None  # an unconfigured experiment
    row = stored_completion(studies, session_id)
    assert row.outcome == "completed" and row.completion == done
    assert done["completedAt"] == row.completed_at.isoformat(timespec="microseconds").replace("+00:00", "Z")

    # A repeat with the same outcome: the stored body, without counting again.
    assert conforms(complete(api, key, session_id, 99), 200) == done
    # Another outcome after completion: refused, nothing changes.
    conforms(complete(api, key, session_id, 3, "screened_out"), 409, "conflict")
    assert stored_completion(studies, session_id).outcome == "completed"
    # An unconfigured experiment writes no ledger row (admission only reads it for configured ones).
    assert scalar(studies, "SELECT count(*) FROM participation_ledger") == 0


def test_completion_at_zero_and_any_outcome_of_the_alphabet_without_a_configuration(api, studies):
    key = new_guest_key()
    session_id = start(api, key)  # no experimentId at all
    done = conforms(complete(api, key, session_id, 0, "screened.out-2"), 201)
    assert done["outcome"] == "screened.out-2"


def test_only_the_owner_and_only_a_participants_outcome(api, studies, auth_emulator):
    key, other = new_guest_key(), new_guest_key()
    session_id = start(api, key, "free-label", responses=1)
    assert_error(complete(api, other, session_id, 1), 403, "permission_denied")
    user = auth_emulator.new_user()
    assert_error(
        api.post("complete_session", {"sessionId": session_id, "responseCount": 1}, token=user.id_token),
        403,
        "permission_denied",
    )
    assert_error(complete(api, key, str(uuid.uuid4()), 0), 404, "not_found")
    assert_error(complete(api, key, session_id, 1, "excluded"), 400, "invalid_argument")
    assert_error(complete(api, key, session_id, 1, "no spaces"), 400, "invalid_argument")
    assert_error(api.post("complete_session", {"sessionId": session_id}, guest=key), 400, "invalid_argument")
    assert_error(complete(api, key, session_id, -1), 400, "invalid_argument")
    assert_error(
        api.post("complete_session", {"sessionId": session_id, "responseCount": "1"}, guest=key),
        400,
        "invalid_argument",
    )
    assert stored_completion(studies, session_id).completed_at is None
    # A user completes its own session with its ID token.
    own = api.post("create_session", {}, token=user.id_token).json()["sessionId"]
    done = api.post("complete_session", {"sessionId": own, "responseCount": 0}, token=user.id_token)
    assert done.status_code == 201, done.text


def test_configured_outcomes_codes_and_the_redirect_template(api, studies, stack):
    configure(
        studies,
        "stroop",
        outcomes={"completed": {"code": "C1A2B3C4"}, "screened_out": {}},
        redirectUrl="https://lab.example.org/done?c={code}&o={outcome}&s={sessionId}&n={visitorNumber}",
    )
    key = new_guest_key()
    session_id = start(api, key, "stroop", responses=1)
    assert_error(complete(api, key, session_id, 1, "unknown_outcome"), 400, "invalid_argument")
    done = conforms(complete(api, key, session_id, 1), 201)
    number = scalar(studies, "SELECT visitor_number FROM sessions WHERE id = :id", id=session_id)
    assert done["completionCode"] == "C1A2B3C4"
    assert done["redirectUrl"] == f"https://lab.example.org/done?c=C1A2B3C4&o=completed&s={session_id}&n={number}"
    # The participant (the owner guest here) is in the ledger, as a keyed hash only.
    guest = guest_row(studies, key)
    expected = participant_hash("stroop", Participant(guest_id=guest.id), stack.participant_key.encode())
    assert [bytes(r.participant_hash) for r in rows(studies, "SELECT * FROM participation_ledger")] == [expected]

    # An outcome without a code: no code, the template filled with an empty one.
    other = new_guest_key()
    screened = conforms(complete(api, other, start(api, other, "stroop"), 0, "screened_out"), 201)
    assert screened["completionCode"] is None
    assert screened["redirectUrl"].startswith("https://lab.example.org/done?c=&o=screened_out&s=")


def test_redirect_urls_of_prolific_sona_and_mturk(api, studies, stack):
    configure(studies, "on-prolific", platform="prolific", outcomes={"completed": {"code": "C0DE+1"}})
    configure(
        studies,
        "on-sona",
        platform="sona",
        outcomes={
            "completed": {"creditUrl": "https://uni.sona-systems.com/webstudy_credit.aspx?survey_code={participantId}"}
        },
    )
    configure(studies, "on-mturk", platform="mturk")
    made = {}
    for experiment, platform, ids in (
        ("on-prolific", "prolific", {"participantId": "p" * 24, "studyId": "s" * 24, "submissionId": "sub1"}),
        ("on-sona", "sona", {"participantId": "12345"}),
        (
            "on-mturk",
            "mturk",
            {
                "participantId": "W1",
                "assignmentId": "A1",
                "hitId": "H1",
                "turkSubmitTo": "https://workersandbox.mturk.com/",
            },
        ),
    ):
        key = new_guest_key()
        session_id = start(api, key, experiment, participant=ids)  # create_session stores the platform ids
        made[platform] = conforms(complete(api, key, session_id, 0), 201)
    assert made["prolific"]["completionCode"] == "C0DE+1"
    assert made["prolific"]["redirectUrl"] == "https://app.prolific.com/submissions/complete?cc=C0DE%2B1"
    assert made["sona"]["redirectUrl"] == "https://uni.sona-systems.com/webstudy_credit.aspx?survey_code=12345"
    assert made["mturk"]["redirectUrl"] == (
        "https://workersandbox.mturk.com/mturk/externalSubmit?assignmentId=A1&outcome=completed"
    )
    # A platform participant is in the ledger as itself, whatever browser it used.
    key = stack.participant_key.encode()
    hashes = {bytes(r.participant_hash) for r in rows(studies, "SELECT participant_hash FROM participation_ledger")}
    assert participant_hash("on-sona", Participant(platform="sona", participant_id="12345"), key) in hashes
    assert len(hashes) == 3
    # Prolific without server-side completion: no delivery.
    assert scalar(studies, "SELECT count(*) FROM completion_deliveries") == 0


def test_a_test_session_is_not_in_the_ledger(api, studies):
    configure(studies, "tested", outcomes={"completed": {"code": "X1"}})
    key = new_guest_key()
    session_id = start(api, key, "tested")
    with studies.begin() as conn:
        conn.execute(text("UPDATE sessions SET test = true WHERE id = :id"), {"id": session_id})
    assert conforms(complete(api, key, session_id, 0), 201)["completionCode"] == "X1"
    assert scalar(studies, "SELECT count(*) FROM participation_ledger") == 0


ROUNDS = 50
RESPONSES = 4


def test_a_completion_racing_the_sessions_responses_never_completes_short(api, studies):
    """Each round: RESPONSES submit_response calls and a client that completes with
    responseCount=RESPONSES, retrying on `incomplete`, all at once. A completion is answered 201
    only once every response is stored; an `incomplete` never counts more than were stored."""
    outcomes = {"incomplete": 0, "completed": 0}
    with ThreadPoolExecutor(max_workers=RESPONSES + 1) as pool:
        for _ in range(ROUNDS):
            key = new_guest_key()
            session_id = start(api, key, "race")

            def submit(i: int, key=key, session_id=session_id):
                return api.post("submit_response", {"sessionId": session_id, "data": i}, guest=key)

            def completion(key=key, session_id=session_id):
                seen = []
                while True:
                    answer = complete(api, key, session_id, RESPONSES)
                    if answer.status_code != 409:
                        return answer, seen
                    seen.append(answer.json()["error"]["stored"])

            finishing = pool.submit(completion)
            submitted = [pool.submit(submit, i) for i in range(RESPONSES)]
            answer, seen = finishing.result()
            assert all(s.result().status_code == 201 for s in submitted)
            assert answer.status_code == 201, answer.text
            assert all(0 <= stored < RESPONSES for stored in seen) and seen == sorted(seen)
            # What was stored when the completion committed: counted in its transaction, so every
            # response the session holds now (none came after) was there, and no fewer than asked.
            held = scalar(
                studies,
                "SELECT count(*) FROM responses r JOIN sessions s ON s.id = r.session_id "
                "WHERE s.id = :id AND s.completed_at IS NOT NULL",
                id=session_id,
            )
            assert held == RESPONSES
            outcomes["incomplete"] += len(seen)
            outcomes["completed"] += 1
    assert outcomes["completed"] == ROUNDS
