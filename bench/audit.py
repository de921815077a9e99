"""The consistency audit (bench/run.py's section "audit at 10k uploads"): `python -m shared.audit
--min-age 0` over uploads whose three stores agree (BENCH_AUDIT_UPLOADS, see below), after the
researchers' study (or over the sessions there are), its wall time and the process's peak memory."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from sqlalchemy import text

from bench.harness import goal, log, notes, row
from devtools.stack import BUCKET, PROJECT, ROOT, Stack

# BENCH_AUDIT_UPLOADS=10000 for the goal's size: the local Storage emulator's writes slow down with
# the objects it holds (1,000 seeded in 38 s, 2,000 in 121 s; 10,000 did not finish in 10 minutes),
# so `make bench` seeds 2,000 and the row shows whether the audit's memory grows with them.
UPLOADS = int(os.environ.get("BENCH_AUDIT_UPLOADS", "2000"))
MEMORY_GOAL_MB = 100


def bench_audit(stack: Stack, uploads: int = UPLOADS) -> None:
    import psutil
    from google.cloud import firestore, storage

    from shared.core.db import plain_engine
    from shared.core.encodings import rfc3339
    from shared.visitors.uploads import upload_id

    env = stack.env()
    admin = plain_engine(stack.database_url)
    with admin.begin() as conn:
        if conn.execute(text("SELECT count(*) FROM sessions")).scalar_one() < 1000:
            conn.execute(
                text(
                    "INSERT INTO sessions (id, visitor_number, experiment_id) "
                    "SELECT gen_random_uuid(), nextval('visitor_number_seq'), 'bench' FROM generate_series(1, 1000)"
                )
            )
        sessions = conn.execute(
            text("SELECT id, visitor_number, experiment_id FROM sessions ORDER BY id LIMIT :n"), {"n": uploads // 4}
        ).all()
    os.environ["STORAGE_EMULATOR_HOST"] = env["STORAGE_EMULATOR_HOST"]
    os.environ["FIRESTORE_EMULATOR_HOST"] = env["FIRESTORE_EMULATOR_HOST"]
    bucket = storage.Client(project=PROJECT).bucket(BUCKET)
    store = firestore.Client(project=PROJECT)

    def upload(i: int) -> dict:
        """One object tagged as the trigger tags it, and its row and documents' values."""
        session = sessions[i % len(sessions)]
        blob = bucket.blob(f"sessions/{session.id}/file-{i}.txt")
        blob.metadata = {
            "visitorNumber": str(session.visitor_number),
            "sessionId": str(session.id),
            "experimentId": session.experiment_id,
        }
        blob.upload_from_string(b"x" * 100, content_type="text/plain")
        blob.metadata = {**blob.metadata, "uploadedAt": rfc3339(blob.time_created)}
        blob.patch()
        return {
            "id": upload_id(BUCKET, blob.name, blob.generation),
            "session_id": str(session.id),
            "visitor_number": session.visitor_number,
            "name": blob.name,
            "generation": blob.generation,
            "uploaded_at": blob.time_created,
            "experiment_id": session.experiment_id,
        }

    started = time.perf_counter()
    with ThreadPoolExecutor(4) as pool:  # more make the Storage emulator drop connections
        made = list(pool.map(upload, range(uploads)))
    with admin.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO uploads (id, session_id, visitor_number, bucket, name, generation, content_type, size, "
                "uploaded_at, recorded_at) VALUES (:id, :session_id, :visitor_number, :bucket, :name, :generation, "
                "'text/plain', 100, :uploaded_at, now() - interval '1 hour')"
            ),
            [{**m, "bucket": BUCKET} for m in made],
        )
    counts: dict[int, int] = {}
    for start in range(0, len(made), 500):
        batch = store.batch()
        for m in made[start : start + 500]:
            counts[m["visitor_number"]] = counts.get(m["visitor_number"], 0) + 1
            batch.set(
                store.collection("uploads").document(m["id"]),
                {
                    "bucket": BUCKET,
                    "name": m["name"],
                    "generation": str(m["generation"]),
                    "contentType": "text/plain",
                    "size": 100,
                    "sessionId": m["session_id"],
                    "visitorNumber": m["visitor_number"],
                    "experimentId": m["experiment_id"],
                    "uploadedAt": m["uploaded_at"],
                    "recordedAt": datetime.now(UTC),
                },
            )
        batch.commit()
    numbers = list(counts.items())
    for start in range(0, len(numbers), 500):
        batch = store.batch()
        for number, count in numbers[start : start + 500]:
            batch.set(
                store.collection("visitors").document(str(number)), {"visitorNumber": number, "uploadCount": count}
            )
        batch.commit()
    log(f"audit: seeded {uploads} uploads in {time.perf_counter() - started:.0f} s")

    command = [sys.executable, "-m", "shared.audit", "--min-age", "0"]
    started = time.perf_counter()
    process = psutil.Popen(
        command, cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    peak = 0
    while process.poll() is None:
        try:
            peak = max(peak, process.memory_info().rss)
        except psutil.NoSuchProcess:
            break
        time.sleep(0.02)
    stdout, stderr = process.communicate()
    wall = time.perf_counter() - started
    assert process.returncode == 0, stdout + stderr  # the seeded stores agree
    megabytes = peak / 2**20
    row(f"audit --min-age 0, {uploads} uploads (subprocess)", 1, [wall], None, f"peak RSS {megabytes:.0f} MB", n=1)
    goal(
        f"the audit at {uploads} uploads stays under {MEMORY_GOAL_MB} MB: peak RSS {megabytes:.0f} MB",
        megabytes < MEMORY_GOAL_MB,
    )
    notes.append(
        f"audit at {uploads} uploads: {wall:.1f} s wall (the process, its imports and clients included), "
        f"peak RSS {megabytes:.0f} MB"
    )
