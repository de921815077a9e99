"""The SQL the product runs is exactly the files of shared/statements/, each whole.

One engine of the product's own kind (shared.core.db.make_engine, prepared statements
on) runs every path that reaches the database, on a fresh database of the test
server: migrations, create_session (numbered and, with the sequence exhausted,
unnumbered), submit_response, get_visitor, register (new number, the guest's
number, a merge, an anonymous account, a claim code), create_claim_code, export_my_data (a
guest, a user), get_study_stats and export_data (zip, and the JSON Lines of the COPY tables),
the researchers' trail (written, read), the session limit refusing, admissions to configured
experiments (a guest, a platform participant, a user, a test run), the storage trigger's
session lookup (live and erased), the
backfill, the one-time import of Firestore's uploads, and erasure (a guest, a user with a claimed guest and a merge, by
number; finished at once, and left pending by a Firestore that cannot be
reached, then resumed). Every
statement PostgreSQL received is recorded from SQLAlchemy's before_cursor_execute;
besides the files of sql/ (the migrations), each must be one file, and each file
must have run.
"""

import json
import re
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import event, text

from shared.core.config import DatabaseSettings
from shared.core.db import STATEMENTS_DIR, make_engine, plain_engine, statement, statement_text
from shared.core.errors import AlreadyParticipated, Conflict, Incomplete, ResourceExhausted
from shared.ops import audit, backfill, import_uploads, maintenance
from shared.ops.migrate import apply_migrations, migration_files
from shared.research import export, researchers, stats, trail
from shared.rights import access, erasure
from shared.studies import experiments
from shared.studies.config import parse_config
from shared.studies.participants import Participant, participant_hash
from shared.visitors import claim_codes, registration, responses, sessions, upload_tickets, uploads
from shared.visitors.guest_limit import Window
from shared.web.auth import Guest, User, hash_guest_key
from shared.web.bodies import SessionParticipant
from shared.web.models import NewResponse, NewSession, StudyQuery
from tests.support import new_guest_key, resume_numbering, stop_numbering

NAMES = sorted(path.relative_to(STATEMENTS_DIR).with_suffix("").as_posix() for path in STATEMENTS_DIR.glob("*/*.sql"))


@pytest.fixture
def fresh_database(stack, engine):
    name = f"statements_{uuid.uuid4().hex[:10]}"
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield stack.postgres.url_for(name)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))


def product_engine(url: str, prepared_statements: bool):
    # One connection: every statement of a run meets the same prepared statements.
    return make_engine(
        DatabaseSettings(
            url=url,
            instance_connection_name=None,
            user=None,
            password=None,
            name=None,
            iam_auth=False,
            ip_type="PUBLIC",
            pool_size=1,
            max_overflow=0,
            pool_timeout=5,
            statement_timeout_ms=5000,
            prepared_statements=prepared_statements,
        )
    )


def unreachable_firestore():
    """A real Firestore client of an emulator host where nothing listens: every call fails."""
    from google.cloud import firestore

    from devtools.ports import free_port
    from devtools.stack import PROJECT
    from tests.conftest import environment

    with environment(FIRESTORE_EMULATOR_HOST=f"127.0.0.1:{free_port()}"):
        return firestore.Client(project=PROJECT)


def run_every_path(engine, admin, stores: erasure.OtherStores) -> None:
    apply_migrations(engine)

    guest, other_guest = Guest(hash_guest_key(new_guest_key())), Guest(hash_guest_key(new_guest_key()))
    user = User(uid="u-statements", email="u@example.org", sign_in_provider="password")
    numbered_user = User(uid="u-numbered", email="n@example.org", sign_in_provider="password")
    new_user = User(uid="u-new", email="new@example.org", sign_in_provider="password")

    _, session = sessions.create_session(engine, guest, NewSession(experimentId="e"))
    sessions.create_session(engine, numbered_user, NewSession())
    responses.submit_response(engine, guest, NewResponse(sessionId=session.session_id, data={"a": 1}))
    sessions.get_visitor(engine, guest)

    stop_numbering(admin)
    sessions.create_session(engine, other_guest, NewSession())
    sessions.create_session(engine, user, NewSession())
    resume_numbering(admin)
    backfill.backfill(engine)

    unseen = Guest(hash_guest_key(new_guest_key()))
    registration.register(engine, new_user, unseen)  # a new number; the unseen key recorded
    registration.register(engine, User("u-claims", None, "password"), guest)  # takes the guest's number
    registration.register(engine, numbered_user, other_guest)  # keeps its number: a merge
    anonymous = User("u-anonymous", None, "anonymous")
    sessions.create_session(engine, anonymous, NewSession())
    registration.register(engine, numbered_user, anonymous)  # claims an anonymous account (SPEC §13)
    registration.register(engine, new_user, User("u-anonymous-unseen", None, "anonymous"))  # recorded as claimed
    coded, coded_anonymous = Guest(hash_guest_key(new_guest_key())), User("u-anonymous-coded", None, "anonymous")
    for visitor in (coded, coded_anonymous):
        sessions.create_session(engine, visitor, NewSession())
        claim_codes.create_claim_code(engine, visitor)
    code = claim_codes.create_claim_code(engine, coded).code  # replaces the guest's first code
    registration.register(engine, numbered_user, claim_codes.parse_code(code))  # a guest's claim code
    sessions.get_visitor(engine, numbered_user)
    _, own = sessions.create_session(engine, numbered_user, NewSession())
    responses.submit_response(engine, numbered_user, NewResponse(sessionId=own.session_id, data=[1]))
    with uploads.locked_session(engine, own.session_id) as (conn, held):
        upload = uploads.ObjectEvent(None, None, "b", f"sessions/{own.session_id}/a.png", 1)
        stored = uploads.StoredObject("image/png", 1, datetime.now(UTC))
        assert uploads.record_in_postgres(conn, upload, held, stored)
        assert uploads.latest_upload(conn, held) == stored.time_created
    assert uploads.already_recorded(engine, upload)
    # An upload Firestore recorded before table uploads existed, brought in by the one-time import.
    name = f"sessions/{own.session_id}/old.png"
    stores.firestore.collection("uploads").document(uploads.upload_id(stores.bucket, name, 1)).set(
        {
            "bucket": stores.bucket,
            "name": name,
            "generation": "1",
            "contentType": None,
            "size": 1,
            "sessionId": str(own.session_id),
            "visitorNumber": None,
            "uploadedAt": datetime.now(UTC),
            "recordedAt": None,
        }
    )
    assert import_uploads.import_uploads(engine, stores.firestore).imported == 1
    guest_with_session = Guest(hash_guest_key(new_guest_key()))
    _, guest_own = sessions.create_session(engine, guest_with_session, NewSession())
    for owner, owned in ((numbered_user, own), (guest_with_session, guest_own)):  # upload tickets
        upload_tickets.create_upload_ticket(engine, owner, owned.session_id, "a.png", key=b"k" * 32, ttl_seconds=60)
    # The audit, repairing what hand edits broke: a session's and a response's number, an object
    # without its row, a counter without its document (so that every audit statement runs).
    with admin.begin() as conn:
        conn.execute(
            text("UPDATE sessions SET visitor_number = visitor_number + 1000 WHERE id = :id"), {"id": own.session_id}
        )
        conn.execute(text("UPDATE responses SET visitor_number = NULL WHERE session_id = :id"), {"id": own.session_id})
    stores.storage.bucket(stores.bucket).blob(f"sessions/{guest_own.session_id}/orphan.png").upload_from_string(b"x")
    repaired = audit.Audit(
        engine,
        stores.storage,
        stores.firestore,
        stores.bucket,
        uploads.TicketCheck("off"),
        repair=True,
        min_age_seconds=0,
    ).run()
    assert {kind: repaired.found[kind] for kind in ("session_number", "object_without_row")} == {
        "session_number": 1,
        "object_without_row": 1,
    }
    again = audit.Audit(
        engine, stores.storage, stores.firestore, stores.bucket, uploads.TicketCheck("off"), min_age_seconds=0
    )
    assert again.run().found["object_without_row"] == 0  # the repaired object has its row, its metadata read
    exporter = Guest(hash_guest_key(new_guest_key()))
    _, exported = sessions.create_session(engine, exporter, NewSession())
    responses.submit_response(engine, exporter, NewResponse(sessionId=exported.session_id, data="x"))
    for caller in (exporter, numbered_user):
        b"".join(access.export_my_data(engine, caller))
    everything = researchers.Scope(everything=True)  # sessions without an experimentId included
    stats.study_stats(engine, everything)
    for format_, table in (("zip", None), *(("jsonl", table) for table in export.TABLES)):
        b"".join(export.export_data(engine, everything, StudyQuery(format=format_, table=table)).chunks)
    for format_, table in (("zip", None), ("jsonl", "sessions")):  # with participant ids (SPEC §14.7)
        query = StudyQuery(format=format_, table=table, include_test=True, participant_ids=True)
        b"".join(export.export_data(engine, everything, query).chunks)

    # complete_session (SPEC §14.4): a guest's session incomplete, then completed with a Prolific
    # delivery whose attempts find nobody listening (retried, then made due by the command), a
    # user's own; the deliveries task and the command's statements.
    from devtools.ports import free_port
    from shared.studies import completion, deliveries
    from tests.conftest import environment

    _, studied = sessions.create_session(engine, exporter, NewSession(experimentId="e"))
    with admin.begin() as conn:
        conn.execute(
            text("INSERT INTO experiments (id, config) VALUES ('e', CAST(:config AS jsonb))"),
            {
                "config": '{"experimentId": "e", "platform": "prolific", "prolificServerSide": true, '
                '"outcomes": {"completed": {"code": "C", "serverCode": "S"}}}'
            },
        )
        conn.execute(
            text(
                "INSERT INTO session_participants (session_id, platform, participant_id, study_id, submission_id) "
                "VALUES (:id, 'prolific', 'p', 's', 'sub')"
            ),
            {"id": studied.session_id},
        )
    asked = completion.Completion(sessionId=studied.session_id, responseCount=1)
    nobody = deliveries.Prolific(f"http://127.0.0.1:{free_port()}", "token")
    with environment(PARTICIPANT_KEY="k" * 32):
        with pytest.raises(Incomplete):
            completion.complete_session(engine, exporter, asked, prolific_token=True)
        responses.submit_response(engine, exporter, NewResponse(sessionId=studied.session_id, data="y"))
        done = completion.complete_session(engine, exporter, asked, prolific_token=True)
    assert done.delivery is not None and deliveries.attempt_first(engine, nobody, done.delivery) == "retry"
    assert deliveries.make_due(engine, failed=True) == 1
    assert deliveries.deliver_due(engine, nobody).retrying == 1
    assert [row.status for row in deliveries.listing(engine)] == ["pending"] and deliveries.counts(engine).pending == 1
    _, finished = sessions.create_session(engine, numbered_user, NewSession())
    completion.complete_session(
        engine, numbered_user, completion.Completion(sessionId=finished.session_id, responseCount=0), False
    )

    # The researchers' trail: an act on its own (an export's), one in an erasure's transaction, the latest.
    trail.Act("r-statements", "export_data", {"experimentIds": "all"}).record(engine)

    # Configured experiments ("ce"; "e" above runs on Prolific): set (new, then replaced), refused
    # mid-study (a dropped condition that holds an assignment; the platform changed once the
    # experiment has sessions), read, listed; a session excluded.
    configured = parse_config({"experimentId": "ce", "conditions": [{"name": "a"}, {"name": "b"}]})
    experiments.configure(engine, configured)
    with admin.begin() as conn:
        conn.execute(text("INSERT INTO assignments (experiment_id, user_id, condition) VALUES ('ce', 'u-new', 'a')"))
    with pytest.raises(Conflict):
        experiments.configure(engine, parse_config({"experimentId": "ce", "conditions": [{"name": "b"}]}))
    with pytest.raises(Conflict):  # "e" has a session on Prolific
        experiments.configure(engine, parse_config({"experimentId": "e"}))
    experiments.configure(engine, configured)
    experiments.configuration(engine, "ce")
    experiments.configurations(engine, researchers.Scope(everything=True))
    experiments.exclude(engine, session.session_id)

    erasure.erase_caller(engine, numbered_user, stores)  # a user with a claimed guest and a merge
    with pytest.raises(uploads.Erased), uploads.locked_session(engine, own.session_id):
        pass
    with pytest.raises(Conflict):
        sessions.create_session(engine, numbered_user, NewSession(sessionId=own.session_id))
    _, guest_session = sessions.create_session(engine, other_guest, NewSession())
    erasure.erase_visitor_number(  # a guest, by number, recorded in the trail
        engine,
        guest_session.visitor_number,
        stores,
        lambda conn, erased: trail.Act(
            "r-statements", "erase_visitor", {"erasureId": str(erased.erasure_id)}
        ).record_in(conn),
    )
    assert [act["action"] for act in trail.latest(engine)] == ["erase_visitor", "export_data"]
    third = Guest(hash_guest_key(new_guest_key()))
    sessions.create_session(engine, third, NewSession())
    down = erasure.OtherStores(unreachable_firestore(), stores.storage, stores.bucket)
    assert erasure.erase_caller(engine, third, down).status == "pending"
    assert erasure.resume(engine, stores).completed == 1
    erasure.status_line(engine)

    _admissions(engine, admin)

    # The guest-creation limit refusing a new guest, and a maintenance run that erases an idle one.
    limited = Window(1, b"\x01" * 32)
    sessions.create_session(engine, Guest(hash_guest_key(new_guest_key())), NewSession(), limited)
    with pytest.raises(ResourceExhausted):
        sessions.create_session(engine, Guest(hash_guest_key(new_guest_key())), NewSession(), limited)
    # The session limit refusing a visitor's session (its window full), numbered and unnumbered.
    busy = Guest(hash_guest_key(new_guest_key()))
    sessions.create_session(engine, busy, NewSession(), session_limit=1)
    with pytest.raises(ResourceExhausted):
        sessions.create_session(engine, busy, NewSession(), session_limit=1)
    idle = Guest(hash_guest_key(new_guest_key()))
    sessions.create_session(engine, idle, NewSession())
    with admin.begin() as conn:
        for table in ("guests", "sessions"):
            conn.execute(text(f"UPDATE {table} SET created_at = created_at - interval '40 days'"))
    assert maintenance.run(engine, stores, retention_days=30).retention.erased >= 1


def _admissions(engine, admin) -> None:
    """Studies (SPEC §14.1-14.3): a configured experiment's admissions: a guest, a platform
    participant (new, returning, in the ledger), a user, a researcher's test run."""
    with admin.begin() as conn:
        for experiment, platform in (("studied", "none"), ("studied-sona", "sona")):
            config = {
                "experimentId": experiment,
                "platform": platform,
                "maxParticipants": 10,
                "conditions": [{"name": "a"}],
            }
            conn.execute(
                text("INSERT INTO experiments (id, config) VALUES (:id, CAST(:config AS jsonb))"),
                {"id": experiment, "config": json.dumps(config)},
            )
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PARTICIPANT_KEY", "k" * 32)
        guest = Guest(hash_guest_key(new_guest_key()))
        sessions.create_session(engine, guest, NewSession(experimentId="studied"))  # new guest
        sessions.create_session(engine, guest, NewSession(experimentId="studied"))  # returning
        ids = SessionParticipant(participantId="S1")
        for _ in range(2):
            sessions.create_session(engine, guest, NewSession(experimentId="studied-sona", participant=ids))
        with admin.begin() as conn:
            conn.execute(
                text("INSERT INTO participation_ledger (experiment_id, participant_hash) VALUES ('studied-sona', :h)"),
                {"h": participant_hash("studied-sona", Participant(platform="sona", participant_id="S1"))},
            )
        with pytest.raises(AlreadyParticipated):
            sessions.create_session(engine, guest, NewSession(experimentId="studied-sona", participant=ids))
        researcher = User("u-studies", None, "password", researcher_claim=True)
        sessions.create_session(engine, researcher, NewSession(experimentId="studied"))
        sessions.create_session(engine, researcher, NewSession(experimentId="studied", test=True))


@pytest.fixture
def stores(stack, firestore, bucket, storage_client) -> erasure.OtherStores:
    return erasure.OtherStores(firestore, storage_client, bucket.name)


def test_every_statement_run_is_one_whole_file_and_every_file_is_run(fresh_database, stores, monkeypatch):
    # Unprepared (DB_PREPARED_STATEMENTS=false), every statement goes through SQLAlchemy's cursor,
    # but the exports' COPY, which runs on pg8000's own cursor: recorded there too.
    import pg8000.legacy  # the module of the cursors that SQLAlchemy's pg8000 dialect hands out

    engine = product_engine(fresh_database, prepared_statements=False)
    admin = plain_engine(fresh_database)
    executed: list[str] = []
    event.listen(
        engine, "before_cursor_execute", lambda _conn, _cursor, sql, _params, _context, _many: executed.append(sql)
    )
    run_on_driver = pg8000.legacy.Cursor.execute

    def recorded(cursor, operation, args=(), stream=None):
        if stream is not None:
            executed.append(operation)
        return run_on_driver(cursor, operation, args, stream=stream)

    monkeypatch.setattr(pg8000.legacy.Cursor, "execute", recorded)
    try:
        run_every_path(engine, admin, stores)
    finally:
        engine.dispose()
        admin.dispose()

    compiled = {name: str(statement(name).compile(dialect=engine.dialect)) for name in NAMES}
    by_text = {sql: name for name, sql in compiled.items()} | {
        statement_text(name): name for name in NAMES if statement_text(name).count("COPY (")
    }
    migrations = {path.read_text(encoding="utf-8") for path in migration_files()}
    unknown = [sql for sql in executed if sql not in by_text and sql not in migrations]
    assert unknown == [], "statements run that are not a file of shared/statements/"
    never_run = sorted(set(NAMES) - {by_text[sql] for sql in executed if sql in by_text})
    assert never_run == [], "files never run"
    assert {sql for sql in executed if sql in migrations} == migrations


# What single_statement runs (db.Statements): prepared on each connection when prepared statements are on.
SINGLE_STATEMENTS = {
    "sessions/create_session_guest",
    "sessions/create_session_guest_unnumbered",
    "sessions/create_session_user",
    "sessions/create_session_user_unnumbered",
    "sessions/get_visitor_guest",
    "sessions/get_visitor_user",
    "sessions/visitor_sessions_guest",
    "sessions/visitor_sessions_user",
    "responses/submit_response_guest",
    "responses/submit_response_user",
    "claim_codes/create_guest",
    "claim_codes/create_user",
    "claim_codes/try",
    "trail/latest",
    "uploads/ticket_owner_guest",
    "uploads/ticket_owner_user",
    # Prepared too, in create_session's transaction for a configured experiment (after its first
    # statement, admission/lock_experiment, which runs through SQLAlchemy and so opens it).
    "admission/participant_guest",
    "admission/participant_platform",
    "admission/participant_user",
    "admission/participated",
    "admission/record_session",
}


def test_prepared_statements_are_the_files_as_pg8000_numbers_their_parameters(fresh_database, stores):
    engine = product_engine(fresh_database, prepared_statements=True)
    admin = plain_engine(fresh_database)
    try:
        run_every_path(engine, admin, stores)
        with engine.connect() as conn:  # the pool's one connection, which ran them all
            prepared = conn.execute(text("SELECT statement FROM pg_prepared_statements")).scalars().all()
    finally:
        engine.dispose()
        admin.dispose()

    # PostgreSQL's copy of each: the file, its :name parameters numbered $1, $2, ... by pg8000.
    by_first_line = {statement_text(name).splitlines()[0]: name for name in NAMES}
    names = sorted(by_first_line[sql.splitlines()[0]] for sql in prepared)
    assert names == sorted(SINGLE_STATEMENTS)
    for sql in prepared:
        file = statement_text(by_first_line[sql.splitlines()[0]])
        assert re.sub(r"\$\d+", "?", sql) == re.sub(r"(?<![:\w]):\w+", "?", file)
