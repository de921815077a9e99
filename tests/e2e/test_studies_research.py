"""Studies for researchers and participants over HTTP (SPEC §14.7, §11): get_study_stats' study
figures, export_data's study columns, test runs and participant ids, export_my_data's study
fields, and withdrawal erasing platform ids and assignments, against the stack's servers.

Sessions are made by create_session, before their experiment is configured (so they are plain
sessions whatever create_session does with a configuration); their study rows (the experiment's
configuration, assignments, platform ids, completion, Prolific deliveries) are then written in
SQL as admission and complete_session write them, and leases are moved by rewriting stored
times. Every figure is compared with what the test made, stated here."""

from __future__ import annotations

import csv
import io
import json
import uuid
import zipfile
from datetime import UTC, datetime

import requests
from sqlalchemy import text

from tests.support import EMPTY_STATS, assert_error, new_guest_key, rows, scalar

# The researcher's secrets in a configuration (SPEC §14): never in an answer of these functions.
SECRETS = ("C1A2B3C4", "SCRN0001", "SRVCODE77")
STROOP = {
    "experimentId": "stroop",
    "active": True,
    "maxParticipants": 300,
    "leaseMinutes": 30,
    "conditions": [{"name": "congruent", "quota": 2}, {"name": "incongruent"}],
    "platform": "prolific",
    "allowRepeat": False,
    "outcomes": {"completed": {"code": "C1A2B3C4", "serverCode": "SRVCODE77"}, "screened_out": {"code": "SCRN0001"}},
    "redirectUrl": None,
    "prolificServerSide": True,
}
ZERO_DAYS = [0] * 30


def configure(db, config: dict) -> None:
    with db.begin() as conn:
        conn.execute(
            text("INSERT INTO experiments (id, config) VALUES (:id, CAST(:config AS jsonb))"),
            {"id": config["experimentId"], "config": json.dumps(config)},
        )


def quiet(experiment_id: str) -> dict:
    return {"experimentId": experiment_id, "active": False, "conditions": [{"name": "only", "quota": 5}]}


def new_session(api, key: str | None, experiment: str | None, token: str | None = None) -> str:
    answer = api.post("create_session", {"experimentId": experiment}, guest=key, token=token)
    assert answer.status_code == 201, answer.text
    return answer.json()["sessionId"]


def respond(api, key: str, session_id: str, level: int = 0) -> None:
    answer = api.post("submit_response", {"sessionId": session_id, "level": level, "data": {"l": level}}, guest=key)
    assert answer.status_code == 201, answer.text


def assign(db, experiment: str, condition: str | None, sessions: list[str], participant: str | None = None) -> int:
    """An assignment, as admission writes it: a Prolific participant's (no owner) when
    `participant` is given, with its platform ids on each session; otherwise the sessions' guest's."""
    with db.begin() as conn:
        if participant is not None:
            assignment = conn.execute(
                text(
                    "INSERT INTO assignments (experiment_id, platform, participant_id, condition) "
                    "VALUES (:e, 'prolific', :p, :c) RETURNING id"
                ),
                {"e": experiment, "p": participant, "c": condition},
            ).scalar_one()
            for session in sessions:
                conn.execute(
                    text(
                        "INSERT INTO session_participants (session_id, platform, participant_id, study_id, "
                        "submission_id) VALUES (:s, 'prolific', :p, 'STUDY1', :sub)"
                    ),
                    {"s": session, "p": participant, "sub": f"SUB-{participant}"},
                )
        else:
            assignment = conn.execute(
                text(
                    "INSERT INTO assignments (experiment_id, guest_id, condition) "
                    "SELECT :e, guest_id, :c FROM sessions WHERE id = :s RETURNING id"
                ),
                {"e": experiment, "c": condition, "s": sessions[0]},
            ).scalar_one()
        conn.execute(
            text("UPDATE sessions SET assignment_id = :a, condition = :c WHERE id = ANY(CAST(:s AS uuid[]))"),
            {"a": assignment, "c": condition, "s": sessions},
        )
    return assignment


def complete(db, session: str, outcome: str) -> None:
    with db.begin() as conn:
        conn.execute(
            text("UPDATE sessions SET completed_at = now(), outcome = :o WHERE id = :s"), {"o": outcome, "s": session}
        )


def age(db, session: str, minutes: int, responses_minutes: int | None = None) -> None:
    """Move a session's start (and its responses) back in time: its lease runs from the latest."""
    with db.begin() as conn:
        conn.execute(
            text("UPDATE sessions SET created_at = now() - make_interval(mins => :m) WHERE id = :s"),
            {"m": minutes, "s": session},
        )
        if responses_minutes is not None:
            conn.execute(
                text("UPDATE responses SET created_at = now() - make_interval(mins => :m) WHERE session_id = :s"),
                {"m": responses_minutes, "s": session},
            )


def stats(api, token, **params) -> dict:
    answer = requests.get(
        api.url("get_study_stats"), params=params, timeout=30, headers={"Authorization": f"Bearer {token}"}
    )
    assert answer.status_code == 200, answer.text
    for secret in SECRETS:
        assert secret not in answer.text
    return answer.json()


def export(api, token, **params) -> requests.Response:
    return requests.get(api.url("export_data"), params=params, timeout=60, headers={"Authorization": f"Bearer {token}"})


def seed_stroop(api, db) -> dict[str, str]:
    """Participants of `stroop` (leaseMinutes 30), by name, each a guest of its own:
    congruent: p1 completed, p2 started now, p3 started 2 hours ago (abandoned), p4 started 2 hours
    ago with a response 10 minutes ago (started: its lease runs from that response);
    incongruent: p5 completed screened_out, p6 (one Prolific participant) an abandoned session and
    a completed one, p7 excluded; t1 a researcher's test run (congruent, completed, level 9).
    Deliveries: p1's delivered, p6's pending, one failed."""
    keys = {name: new_guest_key() for name in ("p1", "p2", "p3", "p4", "p5", "p6", "p7", "t1")}
    s = {name: new_session(api, keys[name], "stroop") for name in keys}
    s["p6-again"] = new_session(api, keys["p6"], "stroop")
    respond(api, keys["p1"], s["p1"], 0)
    respond(api, keys["p1"], s["p1"], 1)
    respond(api, keys["p4"], s["p4"], 0)
    respond(api, keys["t1"], s["t1"], 9)
    configure(db, STROOP)
    for name in ("p1", "p2", "p3", "p4"):
        assign(db, "stroop", "congruent", [s[name]], participant=f"PID{name.upper()}")
    assign(db, "stroop", "incongruent", [s["p5"]], participant="PIDP5")
    assign(db, "stroop", "incongruent", [s["p6"], s["p6-again"]], participant="PIDP6")
    assign(db, "stroop", "incongruent", [s["p7"]], participant="PIDP7")
    with db.begin() as conn:  # a test run has no assignment (SPEC §14.3)
        conn.execute(text("UPDATE sessions SET test = true, condition = 'congruent' WHERE id = :s"), {"s": s["t1"]})
    complete(db, s["p1"], "completed")
    complete(db, s["p5"], "screened_out")
    complete(db, s["p6-again"], "completed")
    complete(db, s["p7"], "excluded")
    complete(db, s["t1"], "completed")
    age(db, s["p3"], 120)
    age(db, s["p4"], 120, responses_minutes=10)
    age(db, s["p6"], 45)
    with db.begin() as conn:
        for session, delivered, failed in ((s["p1"], True, False), (s["p6-again"], False, False), (None, False, True)):
            conn.execute(
                text(
                    "INSERT INTO completion_deliveries (session_id, experiment_id, submission_id, completion_code, "
                    "delivered_at, failed_at) VALUES (:s, 'stroop', 'SUB', 'SRVCODE77', "
                    "CASE WHEN :d THEN now() END, CASE WHEN :f THEN now() END)"
                ),
                {"s": session or str(uuid.uuid4()), "d": delivered, "f": failed},
            )
        conn.execute(  # another experiment's delivery: not stroop's
            text(
                "INSERT INTO completion_deliveries (session_id, experiment_id, submission_id, completion_code) "
                "VALUES (gen_random_uuid(), 'elsewhere', 'SUB', 'X')"
            )
        )
    return s


# --- get_study_stats -------------------------------------------------------------------------


def test_a_configured_experiments_study_figures(api, db, auth_emulator):
    s = seed_stroop(api, db)
    token = auth_emulator.researcher(True).id_token
    [stroop] = stats(api, token, experimentId="stroop")["experiments"]
    assert stroop["active"] is True
    # p1-p7's 8 sessions; t1 (the test run) in no figure but testSessions, its level 9 in no funnel
    assert (stroop["visitors"], stroop["sessions"], stroop["responses"]) == (7, 8, 3)
    assert stroop["levels"] == [{"level": 0, "sessions": 2}, {"level": 1, "sessions": 1}]
    assert sum(day["sessions"] for day in stroop["daily"]) == 8
    assert (stroop["testSessions"], stroop["excluded"]) == (1, 1)
    assert (stroop["started"], stroop["completed"], stroop["abandoned"]) == (2, 3, 2)
    assert stroop["conditions"] == [
        # p1 (completed), p2 and p4 (started) hold places: a quota never refuses a place held
        {"name": "congruent", "quota": 2, "places": 3, "started": 2, "completed": 1, "abandoned": 1},
        # p6 holds one place with two sessions; p5's screened_out holds none; p7 excluded is in none
        {"name": "incongruent", "quota": None, "places": 1, "started": 0, "completed": 2, "abandoned": 1},
    ]
    assert stroop["outcomes"] == {"completed": 2, "screened_out": 1}
    assert stroop["deliveries"] == {"delivered": 1, "pending": 1, "failed": 1}

    # p2's lease runs out (its start moved back beyond 30 minutes); p4's latest response too.
    age(db, s["p2"], 31)
    age(db, s["p4"], 120, responses_minutes=30)
    latest = "SELECT last_response_at < now() - interval '29 minutes' FROM session_counts WHERE session_id = :s"
    assert scalar(db, latest, s=s["p4"])  # the counters' latest response moved with it
    [stroop] = stats(api, token, experimentId="stroop")["experiments"]
    assert (stroop["started"], stroop["completed"], stroop["abandoned"]) == (0, 3, 4)
    assert stroop["conditions"][0] == {
        "name": "congruent",
        "quota": 2,
        "places": 1,
        "started": 0,
        "completed": 1,
        "abandoned": 3,
    }


def test_every_configured_experiment_is_listed_and_unconfigured_ones_are_as_before(api, db, auth_emulator):
    free = new_session(api, new_guest_key(), "free")
    configure(db, quiet("quiet"))
    configure(db, quiet("hidden"))
    everything = stats(api, auth_emulator.researcher(True).id_token)["experiments"]
    assert [e["experimentId"] for e in everything] == ["free", "hidden", "quiet"]
    # An unconfigured experiment: the figures of SPEC §10 only.
    assert set(everything[0]) == {
        *("experimentId", "visitors", "registeredVisitors", "sessions", "responses", "uploads"),
        *("firstSessionAt", "lastSessionAt", "levels", "daily"),
    }
    assert everything[0]["sessions"] == 1 and free
    scoped = stats(api, auth_emulator.researcher(["quiet", "stroop"]).id_token)["experiments"]
    assert [e["experimentId"] for e in scoped] == ["quiet"]
    [listed] = scoped
    assert listed == {
        **EMPTY_STATS,
        "experimentId": "quiet",
        "daily": listed["daily"],
        "active": False,
        "started": 0,
        "completed": 0,
        "abandoned": 0,
        "testSessions": 0,
        "excluded": 0,
        "conditions": [{"name": "only", "quota": 5, "places": 0, "started": 0, "completed": 0, "abandoned": 0}],
        "outcomes": {},
        "deliveries": {"delivered": 0, "pending": 0, "failed": 0},
    }
    assert [(d["newVisitors"], d["sessions"], d["responses"]) for d in listed["daily"]] == [(0, 0, 0)] * 30


def test_an_experiment_with_only_test_runs(api, db, auth_emulator):
    """Test runs are counted apart: an unconfigured experiment of test runs only is not listed,
    a configured one is, with its test runs and nothing else."""
    key = new_guest_key()
    for experiment in ("tried", "tried-configured"):
        session = new_session(api, key, experiment)
        respond(api, key, session, 3)
        with db.begin() as conn:
            conn.execute(text("UPDATE sessions SET test = true WHERE id = :s"), {"s": session})
    configure(db, quiet("tried-configured"))
    [listed] = stats(api, auth_emulator.researcher(True).id_token)["experiments"]
    assert listed["experimentId"] == "tried-configured"
    assert (listed["testSessions"], listed["sessions"], listed["responses"], listed["levels"]) == (1, 0, 0, [])


# --- export_data -----------------------------------------------------------------------------

STUDY_COLUMNS = ["condition", "status", "outcome", "completedAt", "platform", "test"]
SESSION_COLUMNS = [
    *("sessionId", "visitorNumber", "experimentId", "registered", "createdAt", "responseCount", "maxLevel"),
    *("uploadCount", "metadata", *STUDY_COLUMNS),
]
PARTICIPANT_COLUMNS = ["sessionId", "platform", "participantId", "studyId", "submissionId", "assignmentId", "hitId"]


def table(archive: zipfile.ZipFile, name: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(archive.read(name).decode())))


def test_the_sessions_study_columns_test_runs_and_participant_ids(api, db, auth_emulator, stack):
    logged_before = stack.functions.log_path.stat().st_size
    s = seed_stroop(api, db)
    plain = new_session(api, new_guest_key(), None)  # a session of no experiment: platform none, status started
    researcher = auth_emulator.researcher(["stroop"])
    answer = export(api, researcher.id_token)
    assert answer.status_code == 200, answer.text
    for secret in (*SECRETS, "PIDP1", "SUB-PIDP1", "STUDY1"):
        assert secret.encode() not in answer.content
    archive = zipfile.ZipFile(io.BytesIO(answer.content))
    assert archive.namelist() == ["responses.csv", "sessions.csv", "visitors.csv", "uploads.csv", "manifest.json"]
    manifest = json.loads(archive.read("manifest.json"))
    assert manifest["schemaVersion"] == 2
    assert manifest["participantIds"] is False and manifest["filters"]["includeTest"] is False
    assert archive.read("sessions.csv").decode().split("\n", 1)[0] == ",".join(SESSION_COLUMNS)
    sessions = {row["sessionId"]: row for row in table(archive, "sessions.csv")}
    assert set(sessions) == {s[name] for name in s if name != "t1"}  # the test run left out
    study = {name: [sessions[s[name]][c] for c in STUDY_COLUMNS if c != "test"] for name in s if name != "t1"}
    completed_at = {name: sessions[s[name]]["completedAt"] for name in ("p1", "p5", "p6-again", "p7")}
    assert all(datetime.fromisoformat(at) <= datetime.now(UTC) for at in completed_at.values())
    assert study == {
        "p1": ["congruent", "completed", "completed", completed_at["p1"], "prolific"],
        "p2": ["congruent", "started", "", "", "prolific"],
        "p3": ["congruent", "abandoned", "", "", "prolific"],
        "p4": ["congruent", "started", "", "", "prolific"],
        "p5": ["incongruent", "completed", "screened_out", completed_at["p5"], "prolific"],
        "p6": ["incongruent", "abandoned", "", "", "prolific"],
        "p6-again": ["incongruent", "completed", "completed", completed_at["p6-again"], "prolific"],
        "p7": ["incongruent", "completed", "excluded", completed_at["p7"], "prolific"],
    }
    assert {row["test"] for row in sessions.values()} == {"false"}
    assert len(table(archive, "visitors.csv")) == 7 and len(table(archive, "responses.csv")) == 3  # t1's not

    # includeTest=true: the test run too, as one.
    lines = export(api, researcher.id_token, format="jsonl", table="sessions", includeTest="true")
    items = {item["sessionId"]: item for item in map(json.loads, lines.text.splitlines())}
    assert list(items[s["t1"]]) == SESSION_COLUMNS
    assert {k: items[s["t1"]][k] for k in ("condition", "status", "outcome", "platform", "test")} == {
        "condition": "congruent",
        "status": "completed",
        "outcome": "completed",
        "platform": "none",
        "test": True,
    }
    assert items[s["p2"]]["test"] is False and len(items) == 9
    [act] = rows(db, "SELECT details FROM researcher_actions ORDER BY id DESC LIMIT 1")
    assert act.details["includeTest"] is True and "participantIds" not in act.details

    # participantIds=true: the ids column, and participants.csv; the trail records it.
    archive = zipfile.ZipFile(io.BytesIO(export(api, researcher.id_token, participantIds="true").content))
    assert archive.namelist()[-2:] == ["participants.csv", "manifest.json"]
    manifest = json.loads(archive.read("manifest.json"))
    assert manifest["participantIds"] is True and manifest["files"]["participants.csv"]["rows"] == 8
    sessions = table(archive, "sessions.csv")
    assert list(sessions[0]) == [*SESSION_COLUMNS, "participantId"]
    assert {row["sessionId"]: row["participantId"] for row in sessions} == {
        **{s[n]: f"PID{n.upper()}" for n in ("p1", "p2", "p3", "p4", "p5", "p6", "p7")},
        s["p6-again"]: "PIDP6",
    }
    participants = table(archive, "participants.csv")
    assert archive.read("participants.csv").decode().split("\n", 1)[0] == ",".join(PARTICIPANT_COLUMNS)
    assert {row["sessionId"]: row for row in participants}[s["p1"]] == {
        "sessionId": s["p1"],
        "platform": "prolific",
        "participantId": "PIDP1",
        "studyId": "STUDY1",
        "submissionId": "SUB-PIDP1",
        "assignmentId": "",
        "hitId": "",
    }
    for secret in SECRETS:
        assert all(secret.encode() not in archive.read(name) for name in archive.namelist())
    [act] = rows(db, "SELECT uid, details FROM researcher_actions ORDER BY id DESC LIMIT 1")
    assert act.uid == researcher.uid and act.details["participantIds"] is True
    assert "includeTest" not in act.details  # recorded when asked for only
    ids = export(api, researcher.id_token, format="jsonl", table="sessions", participantIds="true")
    assert {json.loads(line)["participantId"] for line in ids.text.splitlines()} >= {"PIDP1", "PIDP6"}

    # Researchers of other experiments get none of them; participant ids of sessions without an
    # experiment are for researchers of every experiment. A malformed flag is 400.
    other = auth_emulator.researcher(["elsewhere"]).id_token
    assert_error(export(api, other, experimentId="stroop", participantIds="true"), 403, "permission_denied")
    assert_error(export(api, researcher.id_token, experimentId="", participantIds="true"), 403, "permission_denied")
    mine = zipfile.ZipFile(io.BytesIO(export(api, other, participantIds="true").content))
    assert table(mine, "participants.csv") == [] and table(mine, "sessions.csv") == []
    everything = export(api, auth_emulator.researcher(True).id_token, format="csv", table="sessions").text
    [row] = [r for r in csv.DictReader(io.StringIO(everything)) if r["sessionId"] == plain]
    assert [row[c] for c in STUDY_COLUMNS] == ["", "started", "", "", "none", "false"]
    for bad in ({"participantIds": "yes"}, {"includeTest": "1"}, {"participantIds": ["true", "true"]}):
        assert_error(export(api, researcher.id_token, **bad), 400, "invalid_argument")
    responses_with_ids = export(api, researcher.id_token, format="csv", table="responses", participantIds="true")
    assert_error(responses_with_ids, 400, "invalid_argument")
    logged = stack.functions.log_path.read_bytes()[logged_before:]
    assert logged  # the functions' lines of this test, none with a participant id
    assert not any(f"PID{n.upper()}".encode() in logged for n in ("p1", "p2", "p3", "p4", "p5", "p6", "p7"))


# --- export_my_data and withdrawal -----------------------------------------------------------


def test_a_participant_exports_its_study_fields_and_its_platform_ids(api, db):
    key = new_guest_key()
    session = new_session(api, key, "stroop")
    plain = new_session(api, key, "free")
    configure(db, STROOP)
    assign(db, "stroop", "incongruent", [session], participant="PIDME")
    complete(db, session, "screened_out")
    answer = api.get("export_my_data", guest=key)
    assert answer.status_code == 200, answer.text
    by_id = {item["sessionId"]: item for item in answer.json()["sessions"]}
    mine = by_id[session]
    assert (mine["condition"], mine["outcome"]) == ("incongruent", "screened_out")
    completed_at = scalar(db, "SELECT completed_at FROM sessions WHERE id = :s", s=session)
    assert datetime.fromisoformat(mine["completedAt"]) == completed_at
    assert mine["participant"] == {
        "platform": "prolific",
        "participantId": "PIDME",
        "studyId": "STUDY1",
        "submissionId": "SUB-PIDME",
        "assignmentId": None,
        "hitId": None,
        "turkSubmitTo": None,
    }
    assert {k: by_id[plain][k] for k in ("condition", "outcome", "completedAt", "participant")} == dict.fromkeys(
        ("condition", "outcome", "completedAt", "participant")
    )
    for secret in SECRETS:
        assert secret not in answer.text


def test_withdrawal_erases_platform_ids_and_assignments_and_frees_the_place(api, db, auth_emulator, stack):
    log = stack.functions.log_path
    logged_before = log.stat().st_size
    key, other_key, owner_key = new_guest_key(), new_guest_key(), new_guest_key()
    sessions = [new_session(api, key, "stroop"), new_session(api, key, "stroop")]
    respond(api, key, sessions[0])
    shared = new_session(api, key, "stroop")  # the same Prolific id on another guest key, below
    elsewhere = new_session(api, other_key, "stroop")
    owned = new_session(api, key, "owned")  # an assignment of the guest itself (platform none)
    kept = new_session(api, owner_key, "stroop")
    configure(db, STROOP)
    configure(db, {"experimentId": "owned", "conditions": [{"name": "a"}]})
    assign(db, "stroop", "congruent", sessions, participant="PIDWITHDRAWS")
    shared_assignment = assign(db, "stroop", "incongruent", [shared], participant="PIDSHARED")
    with db.begin() as conn:  # ... whose other session is another visitor's
        conn.execute(
            text("UPDATE sessions SET assignment_id = :a, condition = 'incongruent' WHERE id = :s"),
            {"a": shared_assignment, "s": elsewhere},
        )
        conn.execute(
            text("INSERT INTO session_participants (session_id, platform, participant_id) VALUES (:s, 'prolific', :p)"),
            {"s": elsewhere, "p": "PIDSHARED"},
        )
    owned_assignment = assign(db, "owned", "a", [owned])
    assign(db, "stroop", "congruent", [kept], participant="PIDSTAYS")
    complete(db, sessions[0], "completed")
    with db.begin() as conn:  # complete_session's ledger row: a keyed hash, never erased
        conn.execute(
            text("INSERT INTO participation_ledger (experiment_id, participant_hash) VALUES ('stroop', :h)"),
            {"h": b"\x01" * 32},
        )
    token = auth_emulator.researcher(True).id_token
    [before] = stats(api, token, experimentId="stroop")["experiments"]
    assert [c["places"] for c in before["conditions"]] == [2, 1]

    answer = api.post("delete_my_data", {}, guest=key)
    assert answer.status_code == 202, answer.text
    assert answer.json()["sessions"] == 4
    assert rows(db, "SELECT participant_id FROM session_participants ORDER BY 1") == [("PIDSHARED",), ("PIDSTAYS",)]
    left = rows(db, "SELECT id, participant_id FROM assignments ORDER BY id")
    # PIDWITHDRAWS's assignment went with its sessions, the guest's own with the guest; the shared
    # one is the other visitor's still (it holds that visitor's session), and PIDSTAYS's is kept.
    assert [a.participant_id for a in left] == ["PIDSHARED", "PIDSTAYS"]
    assert shared_assignment in [a.id for a in left] and owned_assignment not in [a.id for a in left]
    assert scalar(db, "SELECT count(*) FROM participation_ledger") == 1
    [after] = stats(api, token, experimentId="stroop")["experiments"]
    assert [c["places"] for c in after["conditions"]] == [1, 1]  # PIDWITHDRAWS's place is free
    assert after["sessions"] == 2
    everything = json.dumps([[str(v) for v in row] for row in rows(db, "SELECT * FROM assignments")])
    assert "PIDWITHDRAWS" not in everything
    logged = log.read_bytes()[logged_before:]
    for participant in (b"PIDWITHDRAWS", b"PIDSHARED", b"PIDSTAYS"):
        assert participant not in logged


def test_an_erasure_by_number_of_a_signed_in_platform_participant(api, db, auth_emulator):
    """erase_visitor (a researcher) erases the same for a user: its platform ids, the platform
    participant's assignment, and the user's own assignment (which goes with its users row)."""
    user = auth_emulator.new_user()
    answer = api.post("create_session", {"experimentId": "stroop"}, token=user.id_token)
    session, number = answer.json()["sessionId"], answer.json()["visitorNumber"]
    owned = new_session(api, None, "owned", token=user.id_token)
    configure(db, STROOP)
    configure(db, {"experimentId": "owned", "conditions": [{"name": "a"}]})
    assign(db, "stroop", "congruent", [session], participant="PIDBYNUMBER")
    with db.begin() as conn:
        conn.execute(
            text("INSERT INTO assignments (experiment_id, user_id, condition) VALUES ('owned', :u, 'a')"),
            {"u": user.uid},
        )
        conn.execute(text("UPDATE sessions SET assignment_id = lastval() WHERE id = :s"), {"s": owned})
    assert scalar(db, "SELECT count(*) FROM assignments") == 2
    erased = api.post("erase_visitor", {"visitorNumber": number}, token=auth_emulator.researcher(True).id_token)
    assert erased.status_code == 202, erased.text
    assert scalar(db, "SELECT count(*) FROM session_participants") == 0
    assert scalar(db, "SELECT count(*) FROM assignments") == 0


def test_the_study_answers_conform_to_openapi(api, db, auth_emulator):
    from tests.contract.test_openapi import conforms

    key = new_guest_key()
    mine = new_session(api, key, "stroop")
    seed_stroop(api, db)
    assign(db, "stroop", "congruent", [mine], participant="PIDCONFORMS")
    configure(db, quiet("quiet"))
    researcher = auth_emulator.researcher(True).id_token
    answer = conforms(api.get("get_study_stats", token=researcher), 200)
    assert [e["experimentId"] for e in answer["experiments"]] == ["quiet", "stroop"]
    for params in ("?includeTest=true&participantIds=true", "?format=jsonl&table=sessions&participantIds=false"):
        conforms(api.get(f"export_data{params}", token=researcher), 200)
    conforms(api.get("export_data?participantIds=1", token=researcher), 400, "invalid_argument")
    exported = conforms(api.get("export_my_data", guest=key), 200)
    assert exported["sessions"][0]["participant"]["participantId"] == "PIDCONFORMS"
