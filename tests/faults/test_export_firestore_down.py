"""The exports with Firestore stopped: export_my_data, export_data (the zip and each table) and
get_study_stats read uploads from PostgreSQL (SPEC §16), so a functions server whose Firestore
emulator is down still answers 200, uploads included, as it did before the stop."""

from __future__ import annotations

import csv
import io
import zipfile

import pytest
import requests

from tests.support import new_guest_key

pytestmark = pytest.mark.slow


def test_with_firestore_stopped_both_exports_answer_whole_with_their_uploads(
    stack, db, uploads_world, own_firestore, functions_server, auth_emulator
):
    # An upload recorded by the stack's own trigger: its row is in PostgreSQL.
    world, key = uploads_world, new_guest_key()
    session = world.new_session(guest=key, experiment_id="f")["sessionId"]
    item = world.upload(session, "photo.png", b"\x89PNG" + b"\x00" * 20, "image/png")
    assert world.deliver(item).status_code < 300
    # A server of its own whose Firestore is this test's emulator, soon stopped.
    server = functions_server({**stack.env(), "FIRESTORE_EMULATOR_HOST": own_firestore.host})
    researcher = {"Authorization": f"Bearer {auth_emulator.researcher(True).id_token}"}

    def answers() -> dict[str, requests.Response]:
        paths = {
            "mine": "export_my_data",
            "zip": "export_data",
            **{table: f"export_data?format=jsonl&table={table}" for table in ("sessions", "uploads")},
            "stats": "get_study_stats?experimentId=f",
        }
        return {
            name: requests.get(
                f"{server.url}/{path}", headers={"X-Guest-Key": key} if name == "mine" else researcher, timeout=60
            )
            for name, path in paths.items()
        }

    before = answers()
    own_firestore.stop()
    after = answers()

    for name, answer in after.items():
        assert answer.status_code == 200, (name, answer.text)
    (mine,) = after["mine"].json()["sessions"]
    assert mine["uploads"] == before["mine"].json()["sessions"][0]["uploads"]
    assert [u["name"] for u in mine["uploads"]] == [item["name"]]
    with zipfile.ZipFile(io.BytesIO(after["zip"].content)) as archive:
        (row,) = csv.DictReader(io.StringIO(archive.read("uploads.csv").decode()))
        (session_row,) = csv.DictReader(io.StringIO(archive.read("sessions.csv").decode()))
    assert (row["sessionId"], row["name"], row["size"]) == (session, item["name"], "24")
    assert session_row["uploadCount"] == "1"
    for table in ("sessions", "uploads"):
        assert after[table].content == before[table].content
    assert after["stats"].json()["experiments"][0]["uploads"] == 1
