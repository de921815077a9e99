"""export_data when its database connection is cut in the middle of a zip (while responses.csv
is being written): the download ends early, as a zip that no unzip tool accepts and an HTTP body
that every client reports as cut short, with one ERROR log line that names no data. (With
Firestore stopped it answers whole: tests/faults/test_export_firestore_down.py.)"""

from __future__ import annotations

import io
import zipfile

import pytest
import requests
from sqlalchemy import text

from tests.support import new_guest_key, rows

pytestmark = pytest.mark.slow


def test_a_database_failure_in_the_middle_of_a_zip_ends_it_early(stack, db, functions_server, auth_emulator):
    server = functions_server(stack.env())
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
        # ...when the export's connection is cut, in the middle of its COPY.
        cut = rows(
            db,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE pid <> pg_backend_pid() AND query LIKE '%COPY (%responses%' AND query NOT LIKE '%pg_stat_activity%'",
        )
        assert [tuple(r) for r in cut] == [(True,)]
        with pytest.raises(requests.exceptions.ChunkedEncodingError):  # the body did not end: it was cut
            for chunk in body:
                received.append(chunk)
    with pytest.raises(zipfile.BadZipFile):  # no central directory: it cannot pass for a whole export
        zipfile.ZipFile(io.BytesIO(b"".join(received)))
    server.stop()  # its log complete
    log = server.log_path.read_text()
    ended = [line for line in log.splitlines() if "the streamed answer ended early" in line]
    assert len(ended) == 1 and "export_data" in ended[0]
    assert key not in log and session not in ended[0]
    # The export failed, but it was recorded before its first byte: the researchers' trail has it.
    assert rows(db, "SELECT action, details->>'format' AS format FROM researcher_actions") == [("export_data", "zip")]
