"""Configured experiments against the real stack: configure_experiment (POST sets, GET reads or
lists) for researchers of the experiment, its 400s, 403s and 409s for changes mid-study;
exclude_session; the researchers' trail of both; `python -m shared.experiments` next to the
database; and no completion code in the functions' log."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from devtools.ports import free_port
from devtools.stack import ROOT, FunctionsServer
from tests.support import Api, assert_error, new_guest_key, rows, scalar


def new_experiment_id() -> str:
    return f"exp-{uuid.uuid4().hex[:10]}"


def code() -> str:
    """A completion code nobody could guess: searched for in the log afterwards."""
    return "C" + secrets.token_hex(8).upper()


def document(experiment_id: str, **fields) -> dict:
    return {
        "experimentId": experiment_id,
        "conditions": [{"name": "congruent", "quota": 2}, {"name": "incongruent"}],
        "platform": "prolific",
        "outcomes": {"completed": {"code": code()}, "screened_out": {"code": code()}},
        **fields,
    }


def configure(api, token, body):
    return api.post("configure_experiment", body, token=token)


def read(api, token, experiment_id=None):
    query = "" if experiment_id is None else f"?experimentId={experiment_id}"
    return api.get(f"configure_experiment{query}", token=token)


def assign(db, experiment_id: str, condition: str) -> None:
    """A participant assigned to a condition, as admission would store it."""
    with db.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO assignments (experiment_id, platform, participant_id, condition)"
                " VALUES (:e, 'prolific', :p, :c)"
            ),
            {"e": experiment_id, "p": f"P{uuid.uuid4().hex[:12]}", "c": condition},
        )


@pytest.fixture
def researcher(auth_emulator):
    return auth_emulator.researcher(True)


def test_a_configuration_is_set_answered_and_read_back(api, db, researcher):
    experiment_id = new_experiment_id()
    body = document(experiment_id, maxParticipants=300, leaseMinutes=90)
    before = datetime.now(UTC)

    answer = configure(api, researcher.id_token, body)

    assert answer.status_code == 200, answer.text
    stored = answer.json()
    # The document with every default filled in, codes included, and when it was set.
    assert stored == {
        **body,
        "active": True,
        "allowRepeat": False,
        "redirectUrl": None,
        "prolificServerSide": False,
        "conditions": [{"name": "congruent", "quota": 2}, {"name": "incongruent", "quota": None}],
        "outcomes": {
            name: {"code": o["code"], "serverCode": None, "creditUrl": None} for name, o in body["outcomes"].items()
        },
        "updatedAt": stored["updatedAt"],
    }
    assert before <= datetime.fromisoformat(stored["updatedAt"]) <= datetime.now(UTC)
    assert read(api, researcher.id_token, experiment_id).json() == stored
    (row,) = rows(db, "SELECT config FROM experiments WHERE id = :id", id=experiment_id)
    assert row.config == {k: v for k, v in stored.items() if k != "updatedAt"}

    # A new document replaces it whole: what it leaves out takes its default again.
    replaced = configure(api, researcher.id_token, {"experimentId": experiment_id, "platform": "prolific"})
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["conditions"] == [] and replaced.json()["maxParticipants"] is None
    assert replaced.json()["updatedAt"] > stored["updatedAt"]
    assert read(api, researcher.id_token, experiment_id).json() == replaced.json()

    # Without experimentId, GET lists every configuration the researcher may see.
    other = configure(api, researcher.id_token, {"experimentId": "a" + experiment_id}).json()
    listed = read(api, researcher.id_token).json()
    assert listed == {"experiments": [other, replaced.json()]}


def test_an_unconfigured_experiment_is_404_and_a_bad_id_400(api, researcher):
    answer = read(api, researcher.id_token, new_experiment_id())
    assert "no configuration" in assert_error(answer, 404, "not_found")["message"]
    assert_error(read(api, researcher.id_token, "a%20b"), 400, "invalid_argument")
    assert_error(read(api, researcher.id_token, ""), 400, "invalid_argument")
    assert_error(read(api, researcher.id_token, "a&experimentId=b"), 400, "invalid_argument")
    assert_error(api.get("configure_experiment?experiment=a", token=researcher.id_token), 400, "invalid_argument")


def test_only_researchers_of_the_experiment_may_configure_or_read_it(api, db, auth_emulator, researcher):
    experiment_id = new_experiment_id()
    assert configure(api, researcher.id_token, document(experiment_id)).status_code == 200
    scoped = auth_emulator.researcher(["another-study"])

    assert_error(read(api, scoped.id_token, experiment_id), 403, "permission_denied")
    assert_error(configure(api, scoped.id_token, document(experiment_id)), 403, "permission_denied")
    assert_error(configure(api, scoped.id_token, document(new_experiment_id())), 403, "permission_denied")
    assert read(api, scoped.id_token).json() == {"experiments": []}  # none of its experiments is configured
    assert_error(api.get(f"configure_experiment?experimentId={experiment_id}"), 401, "unauthenticated")
    assert_error(api.post("configure_experiment", document(experiment_id)), 401, "unauthenticated")
    plain = assert_error(read(api, auth_emulator.new_user().id_token, experiment_id), 403, "permission_denied")
    # A token taken before the grant lacks the claim: the answer says to get a new one.
    assert "sign in again" in plain["message"] and "getIdToken(true)" in plain["message"]

    # Its own experiment, it may: and it sees only that one in the list.
    mine = auth_emulator.researcher([experiment_id])
    assert read(api, mine.id_token, experiment_id).status_code == 200
    assert [e["experimentId"] for e in read(api, mine.id_token).json()["experiments"]] == [experiment_id]
    assert scalar(db, "SELECT count(*) FROM researcher_actions WHERE action = 'configure_experiment'") == 1


@pytest.mark.parametrize(
    "fields, named",
    [
        ({"platform": "prolific", "redirectUrl": "https://example.org/done?c={code}"}, "redirectUrl"),
        ({"platform": "none", "prolificServerSide": True}, "prolificServerSide"),
        (
            {
                "platform": "none",
                "outcomes": {"completed": {"creditUrl": "https://x.sona-systems.com/{participantId}"}},
            },
            "creditUrl",
        ),
        ({"platform": "mturk", "outcomes": {"completed": {"code": "ABC"}}}, "MTurk"),
        ({"platform": "prolific", "outcomes": {"completed": {"code": "A", "serverCode": "B"}}}, "serverCode"),
        ({"platform": "sona", "outcomes": {"completed": {"creditUrl": "https://x.example/credit"}}}, "participantId"),
        ({"platform": "twitter"}, "platform"),
        ({"conditions": [{"name": "a"}, {"name": "a"}]}, "conditions"),
        ({"leaseMinutes": 0}, "leaseMinutes"),
        ({"color": "blue"}, "color"),
    ],
)
def test_fields_that_do_not_fit_are_400_and_nothing_is_stored(api, db, researcher, fields, named):
    experiment_id = new_experiment_id()
    answer = configure(api, researcher.id_token, {"experimentId": experiment_id, **fields})
    assert named in assert_error(answer, 400, "invalid_argument")["message"]
    assert scalar(db, "SELECT count(*) FROM experiments WHERE id = :id", id=experiment_id) == 0
    assert scalar(db, "SELECT count(*) FROM researcher_actions") == 0


def test_a_condition_holding_assignments_cannot_be_removed_or_renamed(api, db, researcher):
    experiment_id = new_experiment_id()
    first = document(experiment_id, conditions=[{"name": "a"}, {"name": "b"}, {"name": "c"}])
    assert configure(api, researcher.id_token, first).status_code == 200
    assign(db, experiment_id, "a")
    assign(db, experiment_id, "a")

    for conditions in ([{"name": "b"}, {"name": "c"}], [{"name": "a2"}, {"name": "b"}, {"name": "c"}]):
        refused = configure(api, researcher.id_token, {**first, "conditions": conditions})
        assert "a (2)" in assert_error(refused, 409, "conflict")["message"]
    stored = read(api, researcher.id_token, experiment_id).json()
    assert [c["name"] for c in stored["conditions"]] == ["a", "b", "c"]

    # A condition without assignments may go; quotas, the cap and `active` may change.
    changed = {
        **first,
        "conditions": [{"name": "a", "quota": 5}, {"name": "c"}],
        "maxParticipants": 10,
        "active": False,
    }
    answer = configure(api, researcher.id_token, changed)
    assert answer.status_code == 200, answer.text
    assert answer.json()["conditions"] == [{"name": "a", "quota": 5}, {"name": "c", "quota": None}]
    assert scalar(db, "SELECT count(*) FROM researcher_actions WHERE action = 'configure_experiment'") == 2


def test_the_platform_is_fixed_once_the_experiment_has_sessions(api, db, researcher):
    experiment_id = new_experiment_id()
    body = document(experiment_id, platform="none", outcomes={})
    assert configure(api, researcher.id_token, body).status_code == 200
    # No session yet: the platform may change.
    assert configure(api, researcher.id_token, {**body, "platform": "sona"}).status_code == 200
    assert configure(api, researcher.id_token, body).status_code == 200
    made = api.post("create_session", {"experimentId": experiment_id}, guest=new_guest_key())
    assert made.status_code == 201, made.text

    refused = configure(api, researcher.id_token, {**body, "platform": "prolific"})
    assert "from none to prolific" in assert_error(refused, 409, "conflict")["message"]
    assert read(api, researcher.id_token, experiment_id).json()["platform"] == "none"
    # The same platform with other settings is fine.
    assert configure(api, researcher.id_token, {**body, "active": False}).status_code == 200


def test_an_experiment_with_sessions_may_be_configured_for_the_first_time(api, db, researcher):
    experiment_id = new_experiment_id()
    made = api.post("create_session", {"experimentId": experiment_id}, guest=new_guest_key())
    assert made.status_code == 201, made.text

    answer = configure(api, researcher.id_token, document(experiment_id))
    assert answer.status_code == 200, answer.text
    # Its earlier participant keeps no condition.
    assert rows(db, "SELECT condition FROM sessions WHERE experiment_id = :e", e=experiment_id)[0].condition is None


def test_each_change_is_in_the_trail_without_its_codes(api, db, researcher):
    experiment_id = new_experiment_id()
    body = document(experiment_id)
    configure(api, researcher.id_token, body)
    (act,) = rows(db, "SELECT uid, action, details FROM researcher_actions")
    assert (act.uid, act.action, act.details) == (
        researcher.uid,
        "configure_experiment",
        {"experimentId": experiment_id},
    )
    trail = api.get("get_researcher_actions", token=researcher.id_token).json()
    assert [a["action"] for a in trail["actions"]] == ["configure_experiment"]
    for outcome in body["outcomes"].values():
        assert outcome["code"] not in json.dumps(trail)


def test_a_researcher_excludes_a_session_which_frees_its_place(api, db, auth_emulator, researcher):
    experiment_id = new_experiment_id()
    key = new_guest_key()
    session = api.post("create_session", {"experimentId": experiment_id}, guest=key).json()["sessionId"]
    before = datetime.now(UTC)

    assert_error(
        api.post("exclude_session", {"sessionId": session}, token=auth_emulator.researcher(["other"]).id_token),
        403,
        "permission_denied",
    )
    assert_error(api.post("exclude_session", {"sessionId": session}), 401, "unauthenticated")
    assert_error(api.post("exclude_session", {"sessionId": "nope"}, token=researcher.id_token), 400, "invalid_argument")
    assert_error(api.post("exclude_session", {}, token=researcher.id_token), 400, "invalid_argument")
    assert_error(
        api.post("exclude_session", {"sessionId": str(uuid.uuid4())}, token=researcher.id_token), 404, "not_found"
    )
    assert scalar(db, "SELECT outcome FROM sessions WHERE id = :id", id=session) is None

    mine = auth_emulator.researcher([experiment_id])
    answer = api.post("exclude_session", {"sessionId": session}, token=mine.id_token)
    assert answer.status_code == 200, answer.text
    excluded = answer.json()
    assert excluded == {
        "sessionId": session,
        "experimentId": experiment_id,
        "outcome": "excluded",
        "completedAt": excluded["completedAt"],
    }
    assert before <= datetime.fromisoformat(excluded["completedAt"]) <= datetime.now(UTC)
    (row,) = rows(db, "SELECT outcome, completed_at FROM sessions WHERE id = :id", id=session)
    assert (row.outcome, row.completed_at) == ("excluded", datetime.fromisoformat(excluded["completedAt"]))
    # Again: the same answer, and one act in the trail.
    assert api.post("exclude_session", {"sessionId": session}, token=researcher.id_token).json() == excluded
    (act,) = rows(db, "SELECT uid, action, details FROM researcher_actions")
    assert (act.uid, act.action, act.details) == (
        mine.uid,
        "exclude_session",
        {"experimentId": experiment_id, "sessionId": session},
    )


def test_excluding_a_completed_session_keeps_its_completion_time(api, db, researcher):
    session = api.post("create_session", {"experimentId": new_experiment_id()}, guest=new_guest_key()).json()
    with db.begin() as conn:
        conn.execute(
            text("UPDATE sessions SET outcome = 'completed', completed_at = '2026-01-02T03:04:05Z' WHERE id = :id"),
            {"id": session["sessionId"]},
        )
    answer = api.post("exclude_session", {"sessionId": session["sessionId"]}, token=researcher.id_token)
    assert answer.json()["completedAt"] == "2026-01-02T03:04:05.000000Z"
    (row,) = rows(db, "SELECT outcome FROM sessions WHERE id = :id", id=session["sessionId"])
    assert row.outcome == "excluded"


# --- python -m shared.experiments -----------------------------------------------------


def command(functions_env, *args, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "shared.experiments", *args],
        env=functions_env,
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_command_sets_shows_lists_and_excludes(api, db, functions_env, tmp_path):
    experiment_id = new_experiment_id()
    body = document(experiment_id, maxParticipants=40)
    path = tmp_path / "study.json"
    path.write_text(json.dumps(body))

    done = command(functions_env, "set", str(path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(
        f"{experiment_id}: configured (active; platform prolific; at most 40 participants; "
        "conditions congruent (quota 2), incongruent), updatedAt "
    )
    shown = command(functions_env, "show", experiment_id)
    assert shown.returncode == 0, shown.stderr
    assert {k: v for k, v in json.loads(shown.stdout).items() if k != "updatedAt"}["outcomes"]["completed"]["code"] == (
        body["outcomes"]["completed"]["code"]
    )
    listed = command(functions_env, "list")
    assert listed.returncode == 0, listed.stderr
    assert (
        f"{experiment_id}\tactive; platform prolific; at most 40 participants; "
        "conditions congruent (quota 2), incongruent" in listed.stdout.splitlines()
    )
    assert body["outcomes"]["completed"]["code"] not in listed.stdout  # the list shows no code

    # The same checks as the function: a condition holding assignments stays; exit 1 with the reason.
    assign(db, experiment_id, "congruent")
    refused = command(functions_env, "set", "-", stdin=json.dumps({**body, "conditions": []}))
    assert refused.returncode == 1
    assert refused.stderr.startswith("experiments failed: Conditions that hold participants' assignments")
    bad = command(functions_env, "set", "-", stdin=json.dumps({**body, "redirectUrl": "https://x.example/"}))
    assert (bad.returncode, bad.stdout) == (2, "")
    assert "redirectUrl" in bad.stderr
    assert command(functions_env, "set", str(tmp_path / "missing.json")).returncode == 2
    missing = command(functions_env, "show", new_experiment_id())
    assert missing.returncode == 1 and "has no configuration" in missing.stderr

    participant = {"participantId": "P" * 24, "studyId": "S" * 24}  # the study runs on Prolific
    made = api.post(
        "create_session", {"experimentId": experiment_id, "participant": participant}, guest=new_guest_key()
    )
    session = made.json()["sessionId"]
    excluded = command(functions_env, "exclude", session)
    assert excluded.returncode == 0, excluded.stderr
    assert excluded.stdout == f"{session}: excluded (experiment {experiment_id})\n"
    assert scalar(db, "SELECT outcome FROM sessions WHERE id = :id", id=session) == "excluded"
    assert command(functions_env, "exclude", str(uuid.uuid4())).returncode == 1
    assert command(functions_env, "exclude", "not-a-uuid").returncode == 2
    # Next to the database, not as a researcher: nothing in the trail.
    assert scalar(db, "SELECT count(*) FROM researcher_actions") == 0


@pytest.fixture
def logged(stack, db, tmp_path):
    """The functions served with every log line kept (LOG_LEVEL=DEBUG), and that log file."""
    log = tmp_path / "functions.log"
    server = FunctionsServer(free_port(), {**stack.env(), "LOG_LEVEL": "DEBUG"}, log).start()
    yield Api(server.url), log
    server.stop()


def test_no_code_reaches_the_functions_log(logged, db, researcher):
    """Every path of configure_experiment that carries codes - refusals, and a database that fails
    the write - and then the whole log is searched for each code."""
    api, log = logged
    experiment_id = new_experiment_id()
    body = document(experiment_id, conditions=[{"name": "a"}])
    codes = [o["code"] for o in body["outcomes"].values()]
    assert configure(api, researcher.id_token, body).status_code == 200
    assert read(api, researcher.id_token, experiment_id).status_code == 200
    assert read(api, researcher.id_token).status_code == 200
    assign(db, experiment_id, "a")
    assert configure(api, researcher.id_token, {**body, "conditions": []}).status_code == 409
    bad = {**body, "outcomes": {"completed": {"code": codes[0], "serverCode": codes[1]}}}
    assert configure(api, researcher.id_token, bad).status_code == 400
    too_long = {**body, "outcomes": {"completed": {"code": codes[0] * 10}}}
    assert configure(api, researcher.id_token, too_long).status_code == 400
    with db.begin() as conn:  # the database refuses the write, with the row's values in its error
        conn.execute(
            text(
                "CREATE FUNCTION refuse_config() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'refused %', NEW.config::text; END $$"
            )
        )
        conn.execute(
            text(
                "CREATE TRIGGER refuse_config BEFORE UPDATE ON experiments"
                " FOR EACH ROW EXECUTE FUNCTION refuse_config()"
            )
        )
    try:
        failed = configure(api, researcher.id_token, body)
    finally:
        with db.begin() as conn:
            conn.execute(text("DROP TRIGGER refuse_config ON experiments"))
            conn.execute(text("DROP FUNCTION refuse_config()"))
    assert_error(failed, 500, "internal")

    written = log.read_text(errors="replace")
    assert "storing an experiment's configuration failed" in written  # the failure was logged
    for secret in codes:
        assert secret not in written
