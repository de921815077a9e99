"""export_data and get_study_stats with a Firestore emulator of the test's own, which it
stops: before the request, export_data's answer is the ordinary 503 (get_study_stats, which reads
PostgreSQL alone, still answers 200); in the middle of a zip (after
responses.csv and visitors' COPY, at the sessions table, which needs Firestore), the
download ends early, as a zip that no unzip tool accepts and an HTTP body that every client
reports as cut short, with one ERROR log line that names no data."""

from __future__ import annotations

import io
import zipfile

import pytest
import requests
from sqlalchemy import text

from tests.support import assert_error, new_guest_key, rows

pytestmark = pytest.mark.slow


def test_firestore_down_before_the_request_is_503(stack, db, own_firestore, functions_server, auth_emulator):
    server = functions_server({**stack.env(), "FIRESTORE_EMULATOR_HOST": own_firestore.host})
    key = new_guest_key()
    assert (
        requests.post(
            f"{server.url}/create_session", json={"experimentId": "f"}, headers={"X-Guest-Key": key}, timeout=30
        ).status_code
        == 201
    )
    headers = {"Authorization": f"Bearer {auth_emulator.researcher(True).id_token}"}
    assert requests.get(f"{server.url}/get_study_stats", headers=headers, timeout=60).status_code == 200
    own_firestore.stop()
    # statistics come from PostgreSQL alone (uploads too, SPEC §16): still served
    assert requests.get(f"{server.url}/get_study_stats", headers=headers, timeout=60).status_code == 200
    for path in ("export_data?format=csv&table=sessions", "export_data?format=jsonl&table=uploads"):
        refused = requests.get(f"{server.url}/{path}", headers=headers, timeout=60)
        error = assert_error(refused, 503, "unavailable")
        assert "Firestore" in error["message"] and "Content-Disposition" not in refused.headers
    # responses come from PostgreSQL alone: still served
    assert requests.get(f"{server.url}/export_data?format=csv", headers=headers, timeout=60).status_code == 200


def test_firestore_down_in_the_middle_of_a_zip_ends_it_early(stack, db, own_firestore, functions_server, auth_emulator):
    server = functions_server({**stack.env(), "FIRESTORE_EMULATOR_HOST": own_firestore.host})
    key = new_guest_key()
    session = requests.post(
        f"{server.url}/create_session", json={"experimentId": "f"}, headers={"X-Guest-Key": key}, timeout=30
    ).json()["sessionId"]
    with db.begin() as conn:  # responses.csv far larger than what the export holds ahead of its client
        conn.execute(
            text(
                "INSERT INTO responses (id, session_id, visitor_number, level, data) "
                "SELECT gen_random_uuid(), s.id, s.visitor_number, 0, "
                "       to_jsonb(md5(random()::text) || md5(random()::text) || md5(random()::text)) "
                "FROM sessions s, generate_series(1, 60000) WHERE s.id = :id"
            ),
            {"id": session},
        )
    headers = {"Authorization": f"Bearer {auth_emulator.researcher(True).id_token}"}
    received = []
    with requests.get(f"{server.url}/export_data", headers=headers, stream=True, timeout=120) as answer:
        assert answer.status_code == 200
        body = answer.iter_content(chunk_size=None)
        received.append(next(body))  # responses.csv is being written...
        own_firestore.stop()  # ...and the sessions table will need Firestore
        with pytest.raises(requests.exceptions.ChunkedEncodingError):  # the body did not end: it was cut
            for chunk in body:
                received.append(chunk)
    with pytest.raises(zipfile.BadZipFile):  # no central directory: it cannot pass for a whole export
        zipfile.ZipFile(io.BytesIO(b"".join(received)))
    server.stop()  # its log complete
    log = server.log_path.read_text()
    ended = [line for line in log.splitlines() if "the streamed answer ended early" in line]
    assert len(ended) == 1 and "export_data" in ended[0] and "DependencyUnavailable" in ended[0]
    assert key not in log and session not in ended[0]
    # The export failed, but it was recorded before its first byte: the researchers' trail has it.
    assert rows(db, "SELECT action, details->>'format' AS format FROM researcher_actions") == [("export_data", "zip")]
