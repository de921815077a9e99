"""The consistency audit (SPEC §16, `python -m shared.audit`): uploads made through the real
trigger, each store then broken by hand or by a fault, and what the audit counts and mends."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import text

from devtools.stack import BUCKET
from shared.ops.audit import KINDS, Audit, Report
from shared.visitors.uploads import TicketCheck, upload_id
from tests.support import new_guest_key, register, scalar
from tests.uploads_support import SIGNED

ROOT = Path(__file__).resolve().parents[2]


def audit(world, *, repair: bool = False, min_age: int = 0, page_size: int = 500, mode: str = "enforce") -> Report:
    key = world.ticket_key.encode()
    return Audit(
        world.db,
        world.bucket.client,
        world.firestore,
        BUCKET,
        TicketCheck(mode, None if mode == "off" else key),
        repair=repair,
        min_age_seconds=min_age,
        page_size=page_size,
    ).run()


def only(**counts: int) -> dict[str, int]:
    return {kind: counts.get(kind, 0) for kind in KINDS}


def uploaded(world, session_id: str, name: str) -> dict:
    item = world.upload(session_id, name)
    assert world.deliver(item).ok
    return item


def execute(db, sql: str, **params) -> None:
    with db.begin() as conn:
        conn.execute(text(sql), params)


def run_audit(stack, *args: str) -> subprocess.CompletedProcess:
    env = {**stack.env(), "PATH": os.environ.get("PATH", "")}
    return subprocess.run(
        [sys.executable, "-m", "shared.audit", *args],
        cwd=ROOT,
        env={name: value for name, value in env.items() if value},
        capture_output=True,
        text=True,
        timeout=120,
    )


def kind_lines(result: subprocess.CompletedProcess) -> list[str]:
    """The command's lines, one per kind; the other line on standard output is its JSON log line."""
    return [line for line in result.stdout.splitlines() if not line.startswith("{")]


def log_line(result: subprocess.CompletedProcess) -> dict:
    (line,) = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return line


def a_merged_world(world, auth_emulator) -> None:
    """A guest with two uploads registered into an account (its number merged into the user's),
    and another guest's upload: a store in which everything agrees."""
    key = new_guest_key()
    session = world.new_session(guest=key)
    uploaded(world, session["sessionId"], "a.png")
    uploaded(world, session["sessionId"], "b.png")
    user = auth_emulator.new_user()
    assert world.api.post("create_session", {}, token=user.id_token).status_code == 201
    assert register(world.api, user, key).json()["mergedFromVisitorNumber"] == session["visitorNumber"]
    uploaded(world, world.new_session()["sessionId"], "c.png")


def test_a_store_that_agrees_reports_every_kind_zero_and_exits_0(uploads_world, auth_emulator, stack):
    a_merged_world(uploads_world, auth_emulator)

    assert audit(uploads_world).found == only()
    result = run_audit(stack, "--min-age", "0")

    assert result.returncode == 0, result.stderr
    assert kind_lines(result) == [f"{kind}: 0" for kind in KINDS]
    logged = log_line(result)
    assert logged["message"] == "audit" and logged["found"] == only()
    assert logged["checked"] == {"rows": 3, "objects": 3, "numbers": 2}


def test_each_kind_is_counted_and_repair_mends_what_it_may(uploads_world, auth_emulator, stack):
    world, db = uploads_world, uploads_world.db
    a_merged_world(world, auth_emulator)
    # response_number: two responses given another number by hand.
    key = new_guest_key()
    answered = world.new_session(guest=key)
    for i in range(2):
        response = world.api.post("submit_response", {"sessionId": answered["sessionId"], "data": i}, guest=key)
        assert response.status_code == 201, response.text
    execute(db, "UPDATE responses SET visitor_number = 999 WHERE session_id = :id", id=answered["sessionId"])
    # session_number: a session left with a stale number.
    stale = world.new_session()
    execute(db, "UPDATE sessions SET visitor_number = 998 WHERE id = :id", id=stale["sessionId"])
    # row_without_object: an object deleted from the bucket.
    session = world.new_session()
    gone = uploaded(world, session["sessionId"], "gone.png")
    world.bucket.blob(gone["name"]).delete()
    # object_without_row: an object whose event never arrived.
    lost = world.upload(session["sessionId"], "lost.png")
    # metadata_mismatch: an object's visitorNumber changed by hand.
    tagged = uploaded(world, session["sessionId"], "tagged.png")
    blob = world.bucket.get_blob(tagged["name"])
    blob.metadata = {"visitorNumber": "12345"}
    blob.patch()
    # firestore_mismatch: an uploads document deleted.
    documented = uploaded(world, session["sessionId"], "documented.png")
    world.firestore.collection("uploads").document(
        upload_id(BUCKET, documented["name"], int(documented["generation"]))
    ).delete()
    # counter_mismatch: a counter set wrong.
    counted = world.new_session()
    uploaded(world, counted["sessionId"], "counted.png")
    world.firestore.collection("visitors").document(str(counted["visitorNumber"])).update({"uploadCount": 7})
    # erased_object: an object that landed after its session was erased, its event lost.
    key = new_guest_key()
    erased = world.new_session(guest=key)
    assert world.api.post("delete_my_data", {}, guest=key).status_code == 202
    world.upload(erased["sessionId"], "late.png", ticket=SIGNED)
    # unknown_session_object: an object of a session that never existed.
    world.upload(str(uuid.uuid4()), "stray.png", ticket=SIGNED)

    found = only(
        response_number=2,
        session_number=1,
        row_without_object=1,
        object_without_row=1,
        metadata_mismatch=1,
        firestore_mismatch=1,
        counter_mismatch=1,
        erased_object=1,
        unknown_session_object=1,
    )
    assert audit(world).found == found
    checked = run_audit(stack, "--min-age", "0")
    assert checked.returncode == 1, checked.stderr
    assert kind_lines(checked) == [f"{kind}: {found[kind]}" for kind in KINDS]
    assert log_line(checked)["found"] == found
    for secret in (key, *world.owners.values()):
        assert secret not in checked.stdout + checked.stderr

    repaired = run_audit(stack, "--repair", "--min-age", "0")

    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert "response_number: 2 (mended 2)" in repaired.stdout.splitlines()
    assert "unknown_session_object: 1 (mended 0)" in repaired.stdout.splitlines()
    assert audit(world).found == only(row_without_object=1, unknown_session_object=1)
    again = audit(world, repair=True)
    assert again.mended == only() and again.left() == 0
    # What was mended, as the stores hold it now.
    assert scalar(db, "SELECT count(*) FROM responses WHERE visitor_number = 999") == 0
    assert (
        scalar(db, "SELECT visitor_number FROM sessions WHERE id = :id", id=stale["sessionId"])
        == stale["visitorNumber"]
    )
    assert world.stored(lost["name"])["metadata"]["visitorNumber"] == str(session["visitorNumber"])
    assert world.stored(tagged["name"])["metadata"]["visitorNumber"] == str(session["visitorNumber"])
    assert world.visitors()[str(counted["visitorNumber"])]["uploadCount"] == 1
    assert world.visitors()[str(session["visitorNumber"])]["uploadCount"] == 4  # lost.png recorded
    assert not list(world.bucket.list_blobs(prefix=f"sessions/{erased['sessionId']}/"))


def test_without_a_valid_ticket_a_missing_row_is_not_recorded(uploads_world):
    world = uploads_world
    session = world.new_session()
    world.upload(session["sessionId"], "unticketed.png", ticket=False)

    assert audit(world).found == only(object_without_row=1)
    refused = audit(world, repair=True)
    assert refused.mended == only() and refused.left() == 0  # reported, and not its to mend
    assert world.rows() == {}
    assert audit(world, repair=True, mode="off").mended == only(object_without_row=1)  # UPLOAD_TICKETS=off
    assert len(world.rows()) == 1


def test_firestore_restarted_empty_is_found_and_rebuilt_from_postgresql(uploads_world, stack):
    world = uploads_world
    first, second = world.new_session(), world.new_session()
    uploaded(world, first["sessionId"], "a.png")
    uploaded(world, first["sessionId"], "b.png")
    stack.firestore.stop()
    stack.firestore.start()  # an emulator keeps documents in memory: back, and empty
    uploaded(world, second["sessionId"], "c.png")

    assert audit(world).found == only(firestore_mismatch=2, counter_mismatch=1)
    assert audit(world, repair=True).left() == 0

    assert audit(world).found == only()
    assert world.visitors()[str(first["visitorNumber"])]["uploadCount"] == 2
    assert len(world.uploads()) == 3


def test_objects_and_rows_younger_than_min_age_are_skipped(uploads_world):
    world = uploads_world
    session = world.new_session()
    world.upload(session["sessionId"], "in-flight.png")  # its event is on its way

    assert audit(world, min_age=600).found == only()
    assert audit(world, min_age=600, repair=True).mended == only()
    assert audit(world).found == only(object_without_row=1)


def test_more_objects_than_a_page_are_walked_page_by_page(uploads_world):
    world = uploads_world
    sessions = [world.new_session() for _ in range(2)]
    items = [uploaded(world, sessions[i % 2]["sessionId"], f"f{i:02}.png") for i in range(7)]
    assert audit(world, page_size=2).found == only()
    world.bucket.blob(items[3]["name"]).delete()
    world.upload(sessions[0]["sessionId"], "lost.png")

    report = audit(world, page_size=2)

    assert report.found == only(row_without_object=1, object_without_row=1)
    assert report.checked["rows"] == 7 and report.checked["objects"] == 7


def test_a_merged_from_number_on_an_object_agrees(uploads_world, auth_emulator):
    """The object keeps the number it was tagged with (SPEC §5); after a merge it resolves."""
    world = uploads_world
    key = new_guest_key()
    session = world.new_session(guest=key)
    item = uploaded(world, session["sessionId"], "a.png")
    user = auth_emulator.new_user()
    assert world.api.post("create_session", {}, token=user.id_token).status_code == 201
    register(world.api, user, key)
    assert world.stored(item["name"])["metadata"]["visitorNumber"] == str(session["visitorNumber"])

    assert audit(world).found == only()


@pytest.mark.parametrize("argument", ["--min-age=-1", "--min-age=soon", "--fix"])
def test_wrong_arguments_do_not_start(stack, argument):
    result = run_audit(stack, argument)
    assert result.returncode == 2 and result.stdout == ""


def test_repair_beside_a_stream_of_new_uploads_repairs_none_of_them(uploads_world):
    """Uploads in flight (an object before its event, a counter before its row commits) are not
    disagreements: runs of --repair beside them find and mend nothing, and every upload ends
    recorded once."""
    world = uploads_world
    sessions = [world.new_session() for _ in range(2)]
    done = threading.Event()
    delivered: list[dict] = []

    def stream() -> None:
        i = 0
        while not done.is_set():
            item = world.upload(sessions[i % 2]["sessionId"], f"live-{i}.png")
            assert world.deliver(item).ok
            delivered.append(item)
            i += 1

    with ThreadPoolExecutor(1) as pool:
        writer = pool.submit(stream)
        try:
            reports = [audit(world, repair=True, min_age=600) for _ in range(5)]
        finally:
            done.set()
        writer.result()

    assert [(r.found, r.mended) for r in reports] == [(only(), only())] * 5
    assert len(world.rows()) == len(delivered) > 0
    counts = {n: d["uploadCount"] for n, d in world.visitors().items()}
    assert sum(counts.values()) == len(delivered)
    assert audit(world).found == only()  # and once they are old enough, everything agrees
