"""A guest's data as a whole (bench/run.py's sections "register 1000x10" and "withdrawal
1000x10"): a guest of 1,000 sessions x 10 responses, seeded by SQL, claimed by a new user over
HTTP; and erased, each store's part timed on its own."""

from __future__ import annotations

import os
import secrets
import time
import uuid

import requests
from sqlalchemy import text

from bench.harness import goal, notes, row
from devtools.stack import BUCKET, PROJECT, Stack


def seed_guest(engine) -> tuple[str, str]:
    """A guest (its key and id) with 1,000 sessions of 10 responses each, written directly."""
    from shared.web.auth import hash_guest_key

    key = secrets.token_urlsafe(32)
    guest_id = str(uuid.uuid4())
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO guests (id, key_hash, visitor_number) "
                "VALUES (CAST(:id AS uuid), :h, nextval('visitor_number_seq'))"
            ),
            {"id": guest_id, "h": hash_guest_key(key)},
        )
        conn.execute(
            text("""
            INSERT INTO sessions (id, visitor_number, guest_id, experiment_id)
            SELECT gen_random_uuid(), g.visitor_number, g.id, 'bench' FROM guests g, generate_series(1, 1000)
            WHERE g.id = CAST(:id AS uuid)"""),
            {"id": guest_id},
        )
        conn.execute(
            text("""
            INSERT INTO responses (id, session_id, visitor_number, level, data)
            SELECT gen_random_uuid(), s.id, s.visitor_number, i, '{"answer": 42}'::jsonb
            FROM sessions s, generate_series(0, 9) i WHERE s.guest_id = CAST(:id AS uuid)"""),
            {"id": guest_id},
        )
    return key, guest_id


# --- register: 1,000 sessions x 10 responses ---------------------------------------------


def bench_register(stack: Stack, engine) -> None:
    from devtools.clients import AuthEmulatorClient

    key, guest_id = seed_guest(engine)
    user = AuthEmulatorClient(stack.auth.host, PROJECT).new_user()
    url = f"{stack.env()['FUNCTIONS_URL']}/register"
    # Warm the server's token verification path on another (empty) guest first.
    warm = AuthEmulatorClient(stack.auth.host, PROJECT).new_user()
    requests.post(url, json={}, headers={"Authorization": f"Bearer {warm.id_token}"}, timeout=30)
    start = time.perf_counter()
    r = requests.post(
        url, json={}, headers={"Authorization": f"Bearer {user.id_token}", "X-Guest-Key": key}, timeout=60
    )
    elapsed = time.perf_counter() - start
    assert r.status_code in (200, 201), r.text
    body = r.json()
    assert body["migratedSessions"] == 1000, body
    with engine.connect() as conn:
        check = conn.execute(
            text("""
            SELECT count(DISTINCT s.updated_at) AS stamps, count(*) FILTER (WHERE s.user_id = :u) AS moved,
                   (SELECT count(*) FROM responses r JOIN sessions s2 ON s2.id = r.session_id
                     WHERE s2.guest_id = CAST(:g AS uuid) AND r.visitor_number = :n) AS responses
            FROM sessions s WHERE s.guest_id = CAST(:g AS uuid)"""),
            {"u": user.uid, "g": guest_id, "n": body["user"]["visitorNumber"]},
        ).one()
    assert check.moved == 1000 and check.responses == 10000, check
    # now() is the transaction's start: one updated_at over all 1,000 moved sessions means one transaction.
    notes.append(
        f"register: moved {check.moved} sessions and {check.responses} responses; "
        f"{check.stamps} distinct updated_at over the moved sessions (1 = one transaction)."
    )
    row("register: guest with 1,000 sessions x 10 responses", 1, [elapsed], None, f"{elapsed / 1.0:.2f} of 1 s goal")
    goal(f"register 1000x10 < 1 s: {elapsed:.2f} s ({elapsed:.2f} of the budget)", elapsed < 1.0)


# --- withdrawal: 1,000 sessions x 10 responses, 100 uploads ------------------------------


def bench_withdrawal(stack: Stack, engine) -> None:
    """Each store's part of one erasure, timed on its own (shared.erasure's three parts)."""
    from google.cloud import firestore, storage

    from bench.uploads import upload_ticket
    from devtools.clients import StorageEvents
    from shared.rights import erasure
    from shared.web.auth import hash_guest_key

    env = stack.env()
    os.environ["STORAGE_EMULATOR_HOST"] = env["STORAGE_EMULATOR_HOST"]
    os.environ["FIRESTORE_EMULATOR_HOST"] = env["FIRESTORE_EMULATOR_HOST"]
    storage_client = storage.Client(project=PROJECT)
    firestore_client = firestore.Client(project=PROJECT)
    key, guest_id = seed_guest(engine)
    with engine.connect() as conn:
        session_ids = [
            str(r.id)
            for r in conn.execute(
                text("SELECT id FROM sessions WHERE guest_id = CAST(:id AS uuid) ORDER BY id LIMIT 100"),
                {"id": guest_id},
            )
        ]
    # 100 uploads, one in each of 100 sessions, tagged and recorded by the trigger.
    bucket = storage_client.bucket(BUCKET)
    events = StorageEvents(f"{env['FUNCTIONS_URL']}/on_upload_finalized")
    for session_id in session_ids:
        blob = bucket.blob(f"sessions/{session_id}/answer.txt")
        blob.metadata = {"uploadTicket": upload_ticket(env["FUNCTIONS_URL"], key, session_id, "answer.txt")}
        blob.upload_from_string(b"x" * 100, content_type="text/plain")
        assert events.deliver(dict(blob._properties)).status_code < 300

    start = time.perf_counter()
    erased = erasure.erase_rows(engine, erasure.Target(key_hash=hash_guest_key(key)), "visitor")
    sql_s = time.perf_counter() - start
    with engine.connect() as conn:
        erased_ids = [
            str(r.session_id)
            for r in conn.execute(
                text("SELECT session_id FROM erased_sessions WHERE erasure_id = :e"), {"e": erased.erasure_id}
            )
        ]
    start = time.perf_counter()
    uploads = erasure.erase_firestore(firestore_client, erased_ids, [erased.visitor_number])
    firestore_s = time.perf_counter() - start
    start = time.perf_counter()
    objects = erasure.erase_storage(storage_client, BUCKET, erased_ids)
    storage_s = time.perf_counter() - start
    stores = erasure.OtherStores(firestore_client, storage_client, BUCKET)
    start = time.perf_counter()
    erasure.finish(engine, erased.erasure_id, stores)  # marks the ledger; deletes nothing more
    again_s = time.perf_counter() - start
    done = erasure.get(engine, erased.erasure_id)
    firestore_client.close()
    assert (erased.sessions, erased.responses, uploads, objects) == (1000, 10000, 100, 100), (erased, uploads, objects)
    # uploads: the rows part 1 deleted (SPEC §16); objects: none left for finish, the timed call above took them
    assert (done.status, done.uploads, done.objects) == ("done", 100, 0), done
    row(
        "withdrawal 1000x10, 100 uploads: PostgreSQL part (one transaction)",
        1,
        [sql_s],
        None,
        f"{sql_s:.2f} of 1 s goal",
    )
    row(
        "withdrawal: Firestore part (uploads docs by sessionId in 30s, batch deletes)",
        1,
        [firestore_s],
        None,
        f"{firestore_s / sql_s:.1f}x the SQL part",
    )
    row(
        f"withdrawal: Storage part (a listing per session, {erasure.STORAGE_THREADS} at once)",
        1,
        [storage_s],
        None,
        f"{storage_s / sql_s:.1f}x the SQL part",
    )
    row(
        "withdrawal: both parts run again (resume of a finished erasure)",
        1,
        [again_s],
        None,
        f"{again_s / (firestore_s + storage_s):.2f} of the first run",
    )
    notes.append(
        f"withdrawal: {erased.sessions} sessions, {erased.responses} responses, {uploads} uploads "
        f"documents, {objects} objects erased; a second run of both parts found nothing more to delete."
    )
    goal(f"withdrawal SQL part < 1 s: {sql_s:.2f} s", sql_s < 1.0)
