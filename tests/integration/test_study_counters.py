"""The study counters of sql/010_study_counters.sql against the stack's PostgreSQL: after every
path that writes responses or uploads (submit_response, a statement of many responses as the
batch form writes them, register's claims and merges, backfill, erasure, retention, uploads
recorded as the storage trigger records them, hand-edits, TRUNCATE, the migration's own count of
existing rows, and many threads submitting to one session at once), session_counts and
session_days equal a recount of the rows, and get_study_stats equals a brute-force count of the
study in Python."""

from __future__ import annotations

import random
import shutil
import threading
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from shared.core.db import plain_engine
from shared.ops import backfill, maintenance
from shared.ops.migrate import SQL_DIR, apply_migrations, migration_files
from shared.research import stats
from shared.research.researchers import Scope
from shared.rights import erasure
from shared.visitors import registration, responses, sessions
from shared.web.auth import Guest, User, hash_guest_key
from shared.web.models import NewResponse, NewSession
from tests.support import new_guest_key, resume_numbering, stop_numbering

# --- what the counters should hold, counted from the rows themselves ------------------------


def recount(db) -> tuple[dict, dict]:
    """Per session (a session with neither responses nor uploads has no entry) its experiment,
    responses, highest level, levels reached and uploads; per (session, day) its experiment and
    responses: from sessions, responses and uploads, in Python."""
    with db.connect() as conn:
        experiment = dict(conn.execute(text("SELECT id, experiment_id FROM sessions")).all())
        answers = conn.execute(text("SELECT session_id, level, created_at FROM responses")).all()
        files = conn.execute(text("SELECT session_id FROM uploads")).scalars().all()
    per_session: dict = defaultdict(lambda: {"responses": 0, "levels": set(), "uploads": 0})
    per_day: dict = defaultdict(int)
    for session_id, level, created_at in answers:
        per_session[session_id]["responses"] += 1
        if level is not None:
            per_session[session_id]["levels"].add(level)
        per_day[(session_id, created_at.astimezone(UTC).date())] += 1
    for session_id in files:
        per_session[session_id]["uploads"] += 1
    counts = {
        session_id: (
            experiment[session_id],
            c["responses"],
            max(c["levels"], default=None),
            frozenset(c["levels"]),
            c["uploads"],
        )
        for session_id, c in per_session.items()
    }
    days = {key: (experiment[key[0]], n) for key, n in per_day.items()}
    return counts, days


def counters(db) -> tuple[dict, dict]:
    """session_counts and session_days in recount's shape (rows of zeros left out)."""
    with db.connect() as conn:
        rows = conn.execute(text("SELECT * FROM session_counts")).all()
        day_rows = conn.execute(text("SELECT * FROM session_days")).all()
    counts = {
        r.session_id: (
            r.experiment_id,
            r.responses,
            r.highest_level,
            frozenset({level for level in range(63) if r.low_levels >> level & 1} | set(r.high_levels)),
            r.uploads,
        )
        for r in rows
        if r.responses or r.uploads
    }
    assert all(r.high_levels == sorted(set(r.high_levels)) for r in rows)
    return counts, {(r.session_id, r.day): (r.experiment_id, r.responses) for r in day_rows if r.responses}


def assert_exact(db) -> None:
    expected_counts, expected_days = recount(db)
    counts, days = counters(db)
    assert counts == expected_counts
    assert days == expected_days


def brute_force_stats(db, scope_everything_at: datetime) -> list[dict]:
    """get_study_stats' experiments for every session, counted from the rows in Python."""
    with db.connect() as conn:
        all_sessions = conn.execute(text("SELECT id, experiment_id, user_id, guest_id, created_at FROM sessions")).all()
        answers = conn.execute(text("SELECT session_id, level, created_at FROM responses")).all()
        files = conn.execute(text("SELECT session_id FROM uploads")).scalars().all()
    today = scope_everything_at.astimezone(UTC).date()
    days = [today - timedelta(days=n) for n in range(29, -1, -1)]
    experiments = sorted({s.experiment_id for s in all_sessions}, key=lambda e: (e is None, e or ""))
    answer = []
    for experiment in experiments:
        mine = [s for s in all_sessions if s.experiment_id == experiment]
        ids = {s.id for s in mine}
        first_of: dict = {}
        for s in mine:
            visitor = s.user_id or str(s.guest_id)
            first_of[visitor] = min(first_of.get(visitor, s.created_at), s.created_at)
        mine_answers = [a for a in answers if a.session_id in ids]
        highest: dict = {}
        for a in mine_answers:
            if a.level is not None:
                highest[a.session_id] = max(highest.get(a.session_id, a.level), a.level)
        reached = sorted({a.level for a in mine_answers if a.level is not None})
        answer.append(
            {
                "experimentId": experiment,
                "visitors": len(first_of),
                "registeredVisitors": len({s.user_id for s in mine if s.user_id}),
                "sessions": len(mine),
                "responses": len(mine_answers),
                "uploads": sum(1 for session_id in files if session_id in ids),
                "firstSessionAt": min(s.created_at for s in mine),
                "lastSessionAt": max(s.created_at for s in mine),
                "levels": [
                    {"level": level, "sessions": sum(1 for h in highest.values() if h >= level)} for level in reached
                ],
                "daily": [
                    {
                        "date": day.isoformat(),
                        "newVisitors": sum(1 for t in first_of.values() if t.astimezone(UTC).date() == day),
                        "sessions": sum(1 for s in mine if s.created_at.astimezone(UTC).date() == day),
                        "responses": sum(1 for a in mine_answers if a.created_at.astimezone(UTC).date() == day),
                    }
                    for day in days
                ],
            }
        )
    return answer


def assert_stats_exact(db) -> None:
    from shared.core.encodings import rfc3339

    now = datetime.now(UTC)
    expected = brute_force_stats(db, now)
    for entry in expected:
        entry["firstSessionAt"], entry["lastSessionAt"] = (
            rfc3339(entry["firstSessionAt"]),
            rfc3339(entry["lastSessionAt"]),
        )
    assert stats.study_stats(db, Scope(everything=True), now=now)["experiments"] == expected


# --- writing, as the product and an operator would ------------------------------------------


def submit(db, caller, session_id, level=None, response_id=None):
    return responses.submit_response(
        db, caller, NewResponse(sessionId=session_id, level=level, data={"a": 1}, responseId=response_id)
    )


def insert_many(db, session_id, levels: list[int | None], at: datetime | None = None) -> None:
    """Responses written by one INSERT, as submit_response's batch form (SPEC §14.6) writes them."""
    with db.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO responses (id, session_id, visitor_number, level, data, created_at) "
                "SELECT gen_random_uuid(), s.id, s.visitor_number, l.level, '{}', "
                "       coalesce(CAST(:at AS timestamptz), now()) + l.n * interval '1 microsecond' "
                "FROM sessions s, unnest(CAST(:levels AS integer[])) WITH ORDINALITY AS l(level, n) "
                "WHERE s.id = CAST(:s AS uuid)"
            ),
            {"s": str(session_id), "levels": levels, "at": at},
        )


def record_upload(db, session_id, upload_id: str | None = None) -> str:
    """An uploads row as on_upload_finalized records it (once per uploadId)."""
    upload_id = upload_id or uuid.uuid4().hex
    with db.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO uploads (id, session_id, visitor_number, bucket, name, generation, content_type, size, "
                "uploaded_at) SELECT :id, s.id, s.visitor_number, 'bucket', 'f.png', 1, 'image/png', 10, now() "
                "FROM sessions s WHERE s.id = CAST(:s AS uuid) ON CONFLICT (id) DO NOTHING"
            ),
            {"id": upload_id, "s": str(session_id)},
        )
    return upload_id


def run(db, sql: str, **params) -> None:
    with db.begin() as conn:
        conn.execute(text(sql), params)


def new_guest() -> Guest:
    return Guest(hash_guest_key(new_guest_key()))


# --- the tests ------------------------------------------------------------------------------


def test_the_counters_stay_exact_on_every_path(db, firestore, bucket, storage_client):
    guest, other, claimed = new_guest(), new_guest(), new_guest()
    _, a = sessions.create_session(db, guest, NewSession(experimentId="a"))
    _, b = sessions.create_session(db, guest, NewSession(experimentId="b"))
    _, none = sessions.create_session(db, other, NewSession())
    _, c = sessions.create_session(db, claimed, NewSession(experimentId="a"))

    # submit_response, single form: levels 0-62, above 62, none; a retry counts nothing new
    for level in (0, 5, 62, 63, 2147483647, None):
        submit(db, guest, a.session_id, level)
    retried = uuid.uuid4()
    assert submit(db, guest, b.session_id, 1, retried)[0] is True
    assert submit(db, guest, b.session_id, 1, retried)[0] is False
    submit(db, other, none.session_id, 3)
    submit(db, claimed, c.session_id, 2)
    assert_exact(db)
    # many responses in one statement (the batch form), two of its days, a level seen twice
    insert_many(db, b.session_id, [4, 4, 100, None, 100], at=datetime.now(UTC) - timedelta(days=3))
    insert_many(db, b.session_id, [7])
    assert_exact(db)
    assert_stats_exact(db)

    # uploads, as the trigger records them: a redelivery counts once
    first = record_upload(db, a.session_id)
    record_upload(db, a.session_id, first)
    record_upload(db, none.session_id)
    record_upload(db, c.session_id)
    assert_exact(db)

    # register: a claim that takes the guest's number, and one that merges into the user's
    registration.register(db, User("u-counters", "u@example.org", "password"), claimed)
    user = User("u-merging", "m@example.org", "password")
    sessions.create_session(db, user, NewSession(experimentId="a"))
    registration.register(db, user, other)
    assert_exact(db)
    assert_stats_exact(db)

    # backfill: sessions and responses written while numbering failed, numbered afterwards
    late = new_guest()
    stop_numbering(db)
    _, unnumbered = sessions.create_session(db, late, NewSession(experimentId="b"))
    submit(db, late, unnumbered.session_id, 9)
    resume_numbering(db)
    backfill.backfill(db)
    assert_exact(db)

    # hand-edits: a response moved to another session, level and day; an upload moved; a
    # session given another experiment
    run(
        db,
        "UPDATE responses SET session_id = CAST(:to AS uuid), level = 40, created_at = now() - interval '2 days' "
        "WHERE id = (SELECT id FROM responses WHERE session_id = CAST(:from AS uuid) AND level = 62)",
        to=str(b.session_id),
        **{"from": str(a.session_id)},
    )
    run(db, "UPDATE uploads SET session_id = CAST(:to AS uuid) WHERE id = :id", to=str(b.session_id), id=first)
    run(db, "UPDATE sessions SET experiment_id = 'c' WHERE id = CAST(:id AS uuid)", id=str(c.session_id))
    run(db, "UPDATE responses SET data = '2'")  # nothing counted changes
    assert_exact(db)
    assert_stats_exact(db)

    # erasure (the DELETEs cascade), of a visitor with responses and uploads
    erasure.erase_rows(db, erasure.Target(key_hash=guest.key_hash), "visitor")
    assert_exact(db)
    # retention: an empty guest, inactive for long, with an uploads row (the cascade has no session left)
    idle = new_guest()
    _, old = sessions.create_session(db, idle, NewSession(experimentId="b"))
    run(db, "UPDATE guests SET created_at = now() - interval '400 days' WHERE key_hash = :k", k=idle.key_hash)
    run(
        db,
        "UPDATE sessions SET created_at = now() - interval '400 days' WHERE id = CAST(:s AS uuid)",
        s=str(old.session_id),
    )
    record_upload(db, old.session_id)
    maintenance.apply_retention(db, erasure.OtherStores(firestore, storage_client, bucket.name), days=30)
    assert_exact(db)
    assert_stats_exact(db)

    # a DELETE of some responses only, then TRUNCATE of each table
    run(db, "DELETE FROM responses WHERE level = 4")
    run(db, "DELETE FROM uploads WHERE session_id = CAST(:s AS uuid)", s=str(c.session_id))
    assert_exact(db)
    run(db, "TRUNCATE uploads")
    assert_exact(db)
    run(db, "TRUNCATE responses")
    assert_exact(db)
    assert_stats_exact(db)


def test_many_threads_submitting_to_one_session_are_each_counted_once(stack, db):
    guest = new_guest()
    _, session = sessions.create_session(db, guest, NewSession(experimentId="busy"))
    pool = plain_engine(stack.database_url, pool_size=12, max_overflow=0)
    errors: list[BaseException] = []
    start = threading.Barrier(12)

    def submitter(index: int) -> None:
        try:
            start.wait()
            for n in range(15):
                submit(pool, guest, session.session_id, (index + n) % 70)
        except BaseException as error:
            errors.append(error)

    def batcher() -> None:
        try:
            start.wait()
            for n in range(10):
                insert_many(pool, session.session_id, [n, n + 1, 80])
        except BaseException as error:
            errors.append(error)

    def deleter() -> None:  # recounts while the others add
        try:
            start.wait()
            for _ in range(10):
                run(
                    pool,
                    "DELETE FROM responses WHERE id IN "
                    "(SELECT id FROM responses WHERE session_id = CAST(:s AS uuid) LIMIT 2)",
                    s=str(session.session_id),
                )
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=submitter, args=(i,)) for i in range(10)]
    threads += [threading.Thread(target=batcher), threading.Thread(target=deleter)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    finally:
        pool.dispose()
    assert not errors
    with db.connect() as conn:
        stored = conn.execute(text("SELECT count(*) FROM responses")).scalar_one()
    assert 10 * 15 + 10 * 3 - 10 * 2 <= stored <= 10 * 15 + 10 * 3
    assert_exact(db)
    [busy] = stats.study_stats(db, Scope(everything=True))["experiments"]
    assert busy["responses"] == stored


def waiting_for_a_lock(db, pid: int) -> bool:
    with db.connect() as conn:
        return conn.execute(
            text("SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = :p"), {"p": pid}
        ).scalar_one()


def test_a_recount_waits_for_a_response_written_but_not_committed(db):
    guest = new_guest()
    _, session = sessions.create_session(db, guest, NewSession(experimentId="open"))
    submit(db, guest, session.session_id, 1)
    submit(db, guest, session.session_id, 2)
    deleting: list[int] = []
    with db.connect() as writer:
        with writer.begin():
            # a response inserted (its counters written) by a transaction not yet committed
            writer.execute(
                text("INSERT INTO responses (id, session_id, level, data) VALUES (gen_random_uuid(), :s, 9, '{}')"),
                {"s": session.session_id},
            )

            def delete_one() -> None:
                with db.begin() as conn:
                    deleting.append(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
                    conn.execute(
                        text("DELETE FROM responses WHERE session_id = :s AND level = 1"), {"s": session.session_id}
                    )

            deleter = threading.Thread(target=delete_one)
            deleter.start()
            # the DELETE's recount waits for the open transaction (without a lock first, it would
            # count without the new response, then overwrite the counters that response raised)
            for _ in range(600):
                if deleting and waiting_for_a_lock(db, deleting[0]):
                    break
                threading.Event().wait(0.05)
            assert deleting and waiting_for_a_lock(db, deleting[0])
        deleter.join(timeout=60)
    assert_exact(db)
    [open_study] = stats.study_stats(db, Scope(everything=True))["experiments"]
    assert (open_study["responses"], open_study["levels"][-1]) == (2, {"level": 9, "sessions": 1})


def test_uploads_are_counted_per_experiment_from_the_table(db):
    made = {}
    for experiment in ("a", "b", None):
        _, session = sessions.create_session(db, new_guest(), NewSession(experimentId=experiment))
        made[experiment] = session.session_id
    _, bare = sessions.create_session(db, new_guest(), NewSession(experimentId="c"))  # no uploads
    for experiment, n in (("a", 3), ("b", 1), (None, 2)):
        for _ in range(n):
            upload_id = record_upload(db, made[experiment])
        record_upload(db, made[experiment], upload_id)  # redelivered: once
    everything = stats.study_stats(db, Scope(everything=True))["experiments"]
    assert {e["experimentId"]: e["uploads"] for e in everything} == {"a": 3, "b": 1, "c": 0, None: 2}
    assert all(e["responses"] == 0 and e["levels"] == [] for e in everything)
    only_a = stats.study_stats(db, Scope(everything=False, experiments=("a",)))["experiments"]
    assert [(e["experimentId"], e["uploads"]) for e in only_a] == [("a", 3)]
    without = stats.study_stats(db, Scope(everything=False, experiments=("b",), without_experiment=True))
    assert [(e["experimentId"], e["uploads"]) for e in without["experiments"]] == [("b", 1), (None, 2)]
    assert bare


def test_stats_equal_a_brute_force_count_of_a_seeded_study(db):
    rng = random.Random(30)
    with db.begin() as conn:
        conn.execute(text("INSERT INTO users (id, visitor_number) VALUES ('u1', 1001), ('u2', 1002)"))
        guests = [uuid.uuid4() for _ in range(12)]
        for n, guest in enumerate(guests):
            conn.execute(
                text("INSERT INTO guests (id, key_hash, visitor_number) VALUES (:g, :k, :n)"),
                {"g": guest, "k": uuid.uuid4().bytes * 2, "n": n + 1},
            )
        for n in range(60):
            guest = rng.choice(guests)
            user = rng.choice([None, None, "u1", "u2"])
            days_ago = rng.choice([0, 1, 2, 10, 29, 30, 45])
            conn.execute(
                text(
                    "INSERT INTO sessions (id, visitor_number, user_id, guest_id, experiment_id, created_at) "
                    "VALUES (gen_random_uuid(), 1, :u, :g, :e, now() - :d * interval '1 day' - :n * interval '1 min')"
                ),
                {"u": user, "g": guest, "e": rng.choice(["x", "y", None]), "d": days_ago, "n": n},
            )
    with db.connect() as conn:
        ids = conn.execute(text("SELECT id FROM sessions ORDER BY id")).scalars().all()
    for session_id in ids:
        for _ in range(rng.randrange(4)):
            levels = [rng.choice([None, 0, 1, 2, 3, 62, 63, 90]) for _ in range(rng.randrange(1, 5))]
            insert_many(db, session_id, levels, at=datetime.now(UTC) - timedelta(days=rng.choice([0, 1, 31])))
        for _ in range(rng.randrange(3)):
            record_upload(db, session_id)
    assert_exact(db)
    assert_stats_exact(db)


def test_the_migration_counts_the_rows_written_before_it(stack, engine, tmp_path):
    name = f"counters_{uuid.uuid4().hex[:10]}"
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    earlier = tmp_path / "sql"
    earlier.mkdir()
    for path in migration_files():
        if path.name < "010":
            shutil.copy(path, earlier / path.name)
    fresh = plain_engine(stack.postgres.url_for(name))
    try:
        apply_migrations(fresh, earlier)
        with fresh.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO sessions (id, visitor_number, experiment_id, created_at) "
                    "SELECT gen_random_uuid(), n, CASE WHEN n % 3 = 0 THEN NULL ELSE 'e' || n % 3 END, "
                    "       now() - n * interval '1 hour' FROM generate_series(1, 40) n"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO responses (id, session_id, visitor_number, level, data, created_at) "
                    "SELECT gen_random_uuid(), s.id, 1, CASE WHEN k = 3 THEN NULL ELSE (k * 37) % 70 END, '{}', "
                    "       s.created_at + k * interval '7 hours' "
                    "FROM sessions s, generate_series(1, 5) k WHERE s.visitor_number % 4 <> 0"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO uploads (id, session_id, visitor_number, bucket, name, generation, uploaded_at) "
                    "SELECT md5(s.id::text || k), s.id, 1, 'b', 'f', 1, now() "
                    "FROM sessions s, generate_series(1, 2) k WHERE s.visitor_number % 5 <> 0"
                )
            )
        assert "010_study_counters.sql" in apply_migrations(fresh, SQL_DIR)
        assert_exact(fresh)
        assert_stats_exact(fresh)
    finally:
        fresh.dispose()
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))


@pytest.mark.parametrize("table", ["session_counts", "session_days"])
def test_the_functions_may_read_the_counters_but_not_write_them(db, table):
    with db.connect() as conn:
        rights = conn.execute(
            text(
                "SELECT has_table_privilege('visitor_functions', :t, 'SELECT'), "
                "has_table_privilege('visitor_erasure', :t, 'INSERT'), "
                "has_table_privilege('visitor_erasure', :t, 'UPDATE'), "
                "has_table_privilege('visitor_erasure', :t, 'DELETE')"
            ),
            {"t": table},
        ).one()
    assert tuple(rights) == (True, False, False, False)
