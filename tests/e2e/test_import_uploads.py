"""`python -m shared.import_uploads` (SPEC §16): the uploads Firestore recorded before table
`uploads` existed come into PostgreSQL exactly once, with their session's current number,
also when a run is killed in the middle and run again. Sessions are made over HTTP; the
Firestore documents are written as the storage trigger wrote them before §16."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from devtools.ports import free_port
from devtools.stack import BUCKET, ROOT
from shared.ops.import_uploads import PAGE_SIZE, import_uploads
from shared.ops.migrate import grant_functions_role
from tests.support import new_guest_key, register, rows, scalar

UPLOADED_AT = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def old_trigger_documents(firestore, session: dict, count: int, first_file: int = 0) -> dict[str, dict]:
    """`uploads/{uploadId}` documents of one session as record_in_firestore wrote them before
    §16 (the number is the session's when the object arrived); {uploadId: document}."""
    from google.cloud import firestore as firestore_module

    from shared.visitors.uploads import upload_id

    written: dict[str, dict] = {}
    batch = firestore.batch()
    for i in range(first_file, first_file + count):
        name = f"sessions/{session['sessionId']}/file-{i}.png"
        generation = 1_700_000_000_000_000 + secrets.randbelow(10**15)  # beyond 2^53, as real ones are
        document = {
            "bucket": BUCKET,
            "name": name,
            "generation": str(generation),
            "contentType": "image/png",
            "size": 1000 + i,
            "sessionId": session["sessionId"],
            "visitorNumber": session["visitorNumber"],
            "experimentId": session.get("experimentId"),
            "uploadedAt": UPLOADED_AT + timedelta(seconds=i),
            "recordedAt": firestore_module.SERVER_TIMESTAMP,
        }
        uid = upload_id(BUCKET, name, generation)
        batch.set(firestore.collection("uploads").document(uid), document)
        written[uid] = document
        if len(batch) == 400:  # a commit takes at most 500 writes
            batch.commit()
            batch = firestore.batch()
    batch.commit()
    return written


def new_session(api, guest: str | None = None, experiment_id: str = "study-1") -> dict:
    answer = api.post("create_session", {"experimentId": experiment_id}, guest=guest or new_guest_key())
    assert answer.status_code == 201, answer.text
    return answer.json()


def upload_rows(db) -> dict[str, dict]:
    return {row.id: row._asdict() for row in rows(db, "SELECT * FROM uploads")}


# --- In process ---------------------------------------------------------------


def test_every_upload_is_imported_once_with_its_fields_and_a_second_run_imports_none(api, db, firestore):
    sessions = [new_session(api) for _ in range(3)]
    documents: dict[str, dict] = {}
    for i, session in enumerate(sessions):
        documents |= old_trigger_documents(firestore, session, 3 + i)  # 12 documents: pages of 5, 5 and 2

    first = import_uploads(db, firestore, page_size=5)

    assert (first.imported, first.present, first.erased, first.unknown, first.pages) == (12, 0, 0, 0, 3)
    stored = upload_rows(db)
    assert set(stored) == set(documents)
    for uid, document in documents.items():
        row = stored[uid]
        assert (
            str(row["session_id"]),
            row["visitor_number"],
            row["bucket"],
            row["name"],
            row["generation"],
            row["content_type"],
            row["size"],
            row["uploaded_at"],
        ) == (
            document["sessionId"],
            document["visitorNumber"],
            BUCKET,
            document["name"],
            int(document["generation"]),
            "image/png",
            document["size"],
            document["uploadedAt"],
        )
    recorded = {doc.id: doc.to_dict()["recordedAt"] for doc in firestore.collection("uploads").stream()}
    assert {uid: row["recorded_at"] for uid, row in stored.items()} == recorded

    second = import_uploads(db, firestore, page_size=5)

    assert (second.imported, second.present) == (0, 12)
    assert second.line() == (
        "import-uploads: 0 imported, 12 already present, 0 skipped (0 of erased sessions, 0 of unknown sessions)"
    )
    assert upload_rows(db) == stored


def test_a_merged_visitors_upload_takes_the_sessions_current_number(api, db, firestore, auth_emulator):
    user = auth_emulator.new_user()
    own = api.post("create_session", {}, token=user.id_token).json()
    key = new_guest_key()
    guest_session = new_session(api, guest=key)
    documents = old_trigger_documents(firestore, guest_session, 2)  # carrying the guest's number
    merged = register(api, user, key)
    assert merged.status_code == 200, merged.text
    assert merged.json()["mergedFromVisitorNumber"] == guest_session["visitorNumber"]
    assert own["visitorNumber"] != guest_session["visitorNumber"]

    assert import_uploads(db, firestore).imported == 2

    current = scalar(db, "SELECT visitor_number FROM sessions WHERE id = :id", id=guest_session["sessionId"])
    assert current == own["visitorNumber"]
    assert {row["visitor_number"] for row in upload_rows(db).values()} == {own["visitorNumber"]}
    assert set(upload_rows(db)) == set(documents)


def test_documents_of_erased_and_unknown_sessions_are_skipped_and_counted(api, db, firestore):
    live = new_session(api)
    key = new_guest_key()
    erased = new_session(api, guest=key)
    withdrawn = api.post("delete_my_data", {}, guest=key)
    assert withdrawn.status_code == 202, withdrawn.text
    assert scalar(db, "SELECT count(*) FROM erased_sessions WHERE session_id = :id", id=erased["sessionId"]) == 1
    kept = old_trigger_documents(firestore, live, 1)
    # Left by an old trigger after the erasure's Firestore part ran, and of a session never made.
    old_trigger_documents(firestore, erased, 2)
    old_trigger_documents(firestore, {"sessionId": str(uuid.uuid4()), "visitorNumber": 99}, 1)

    summary = import_uploads(db, firestore)

    assert (summary.imported, summary.present, summary.erased, summary.unknown) == (1, 0, 2, 1)
    assert summary.line() == (
        "import-uploads: 1 imported, 0 already present, 3 skipped (2 of erased sessions, 1 of unknown sessions)"
    )
    assert set(upload_rows(db)) == set(kept)


def test_a_document_that_holds_no_upload_is_left_out_and_named_in_the_log(api, db, firestore, lines):
    session = new_session(api)
    good = old_trigger_documents(firestore, session, 1)
    firestore.collection("uploads").document("not-an-upload-id").set(next(iter(good.values())))

    summary = import_uploads(db, firestore)

    assert (summary.imported, summary.malformed) == (1, ["not-an-upload-id"])
    assert summary.line().endswith(", 1 malformed left out (their ids are in the log)")
    assert set(upload_rows(db)) == set(good)
    [logged] = [line for line in lines if line.name == "visitors.import_uploads"]
    assert logged.fields["malformedIds"] == ["not-an-upload-id"]


# --- The command --------------------------------------------------------------


@pytest.fixture
def functions_member(stack, engine):
    """DATABASE_URL of a login user whose only rights come from visitor_functions, as the
    backfill may run (docs/operations.md)."""
    import sqlalchemy

    user = f"visitors_import_{uuid.uuid4().hex[:8]}"
    with engine.begin() as conn:
        conn.exec_driver_sql(f'CREATE ROLE "{user}" LOGIN')
    grant_functions_role(engine, user)
    yield sqlalchemy.make_url(stack.database_url).set(username=user, password="x").render_as_string(False)
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = :u"), {"u": user})
        conn.exec_driver_sql(f'DROP ROLE "{user}"')


def command_env(stack, **overrides: str) -> dict[str, str]:
    env = {**stack.env(), "PATH": os.environ.get("PATH", ""), **overrides}
    return {name: value for name, value in env.items() if value}


def start_command(env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "shared.import_uploads"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_command(env: dict[str, str]) -> subprocess.CompletedProcess:
    process = start_command(env)
    stdout, stderr = process.communicate(timeout=120)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def summary_line(result: subprocess.CompletedProcess) -> str:
    return [line for line in result.stdout.splitlines() if line.startswith("import-uploads:")][-1]


def test_the_command_prints_its_summary_and_runs_as_a_member_of_visitor_functions(
    stack, api, db, firestore, functions_member
):
    session = new_session(api)
    old_trigger_documents(firestore, session, 3)
    env = command_env(stack, DATABASE_URL=functions_member)

    first = run_command(env)
    again = run_command(env)

    assert (first.returncode, first.stderr) == (0, ""), first.stderr
    assert summary_line(first) == (
        "import-uploads: 3 imported, 0 already present, 0 skipped (0 of erased sessions, 0 of unknown sessions)"
    )
    assert (again.returncode, summary_line(again)) == (
        0,
        "import-uploads: 0 imported, 3 already present, 0 skipped (0 of erased sessions, 0 of unknown sessions)",
    )
    assert scalar(db, "SELECT count(*) FROM uploads") == 3
    log_lines = [line for line in first.stdout.splitlines() if line.startswith("{")]
    assert len(log_lines) == 1 and '"imported": 3' in log_lines[0]


def test_a_run_killed_in_the_middle_then_run_again_imports_each_upload_once(stack, api, db, firestore):
    sessions = [new_session(api) for _ in range(4)]
    documents: dict[str, dict] = {}
    for session in sessions:
        documents |= old_trigger_documents(firestore, session, 90)  # 360: a page of 300 and one of 60
    blocked = sorted(documents)[PAGE_SIZE]  # the second page's first upload
    # A transaction that inserts the second page's first row and waits: the command's second
    # page waits for it (ON CONFLICT), after its first page committed. Under a session of its own:
    # the row's counters (sql/010) then hold nothing that the first page's sessions need.
    elsewhere = new_session(api)["sessionId"]
    holder = db.connect()
    holding = holder.begin()
    holder.execute(
        text(
            "INSERT INTO uploads (id, session_id, bucket, name, generation, uploaded_at) "
            "VALUES (:id, CAST(:session AS uuid), 'b', 'n', 1, now())"
        ),
        {"id": blocked, "session": elsewhere},
    )
    try:
        process = start_command(command_env(stack))
        deadline = time.monotonic() + 60
        while scalar(db, "SELECT count(*) FROM uploads") < PAGE_SIZE:
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the first page was never committed"
            time.sleep(0.05)
        process.kill()
        process.communicate(timeout=30)
    finally:
        holding.rollback()
        holder.close()
    assert scalar(db, "SELECT count(*) FROM uploads") == PAGE_SIZE  # the second page left nothing

    again = run_command(command_env(stack))

    assert again.returncode == 0, again.stderr
    assert summary_line(again).startswith(f"import-uploads: 60 imported, {PAGE_SIZE} already present, 0 skipped")
    assert set(upload_rows(db)) == set(documents)
    assert scalar(db, "SELECT count(*) FROM uploads") == len(documents)


def test_an_unavailable_store_exits_1_and_missing_settings_exit_2(stack, api, db, firestore):
    old_trigger_documents(firestore, new_session(api), 2)
    nowhere = f"127.0.0.1:{free_port()}"

    no_firestore = run_command(command_env(stack, FIRESTORE_EMULATOR_HOST=nowhere))
    no_database = run_command(command_env(stack, DATABASE_URL=f"postgresql://postgres@{nowhere}/visitors"))
    no_settings = run_command(command_env(stack, DATABASE_URL=""))

    assert no_firestore.returncode == 1
    assert no_firestore.stderr.splitlines() == [
        "import_uploads failed: Firestore is unavailable; every page before this one is imported, run it again."
    ]
    assert no_database.returncode == 1
    assert len(no_database.stderr.splitlines()) == 1 and no_database.stderr.startswith("import_uploads failed: ")
    assert no_settings.returncode == 2, no_settings.stderr
    assert scalar(db, "SELECT count(*) FROM uploads") == 0
    assert run_command(command_env(stack)).returncode == 0
    assert scalar(db, "SELECT count(*) FROM uploads") == 2
