"""export_my_data in process (tests/inprocess/conftest.py), its body read chunk by chunk
as the app makes it: memory that does not grow with the document, one snapshot of the
database for the whole document, and a failure after the first chunk."""

from __future__ import annotations

import hashlib
import json
import logging
import tracemalloc

import pytest
from sqlalchemy import text

from shared.web.http import StreamEndedEarly
from tests.support import guest_row, new_guest_key, rows, scalar

pytestmark = pytest.mark.slow


def seed_responses(db, session_id: str, count: int, text_bytes: int = 960) -> None:
    """`count` responses of about 1 KiB in one session, written with SQL (fast), one
    millisecond apart after the session was created."""
    with db.begin() as conn:
        conn.execute(
            text("""
            INSERT INTO responses (id, session_id, visitor_number, level, data, created_at)
            SELECT gen_random_uuid(), s.id, s.visitor_number, CASE WHEN mod(i, 5) = 0 THEN NULL ELSE mod(i, 7) END,
                   jsonb_build_object('i', i, 'ok', mod(i, 2) = 0, 'answer', repeat(md5(i::text), :repeats)),
                   s.created_at + i * interval '1 millisecond'
            FROM sessions s, generate_series(1, :count) AS i
            WHERE s.id = CAST(:session_id AS uuid)
        """),
            {"session_id": session_id, "count": count, "repeats": text_bytes // 32},
        )


def guest_with_sessions(api, sessions: int) -> tuple[str, list[str]]:
    key = new_guest_key()
    ids = []
    for i in range(sessions):
        answer = api.post("create_session", {"experimentId": f"e{i}", "metadata": {"i": i}}, guest=key)
        assert answer.status_code == 201, answer.text
        ids.append(answer.json()["sessionId"])
    return key, ids


def test_ten_thousand_responses_stream_in_memory_far_below_the_documents_size(api, db, tmp_path):
    key, sessions = guest_with_sessions(api, 3)
    for session_id, count in zip(sessions, (3334, 3333, 3333)):
        seed_responses(db, session_id, count)
    warm_key, _ = guest_with_sessions(api, 1)  # imports, the pool and the Firestore client made outside the count
    assert api.get("export_my_data", guest=warm_key).status_code == 200

    path, size, chunks, largest = tmp_path / "my-data.json", 0, 0, 0
    tracemalloc.start()
    try:
        with api.stream("export_my_data", guest=key) as response, path.open("wb") as file:
            assert response.status_code == 200
            for chunk in response.response:
                file.write(chunk)
                size, chunks, largest = size + len(chunk), chunks + 1, max(largest, len(chunk))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    print(
        f"\nexport_my_data: {size:,} bytes in {chunks} chunks (largest {largest:,}); "
        f"peak traced memory {peak:,} bytes ({peak / size:.1%} of the body)"
    )
    assert size > 10_000 * 1000
    # Holding the whole result (rows, or the text) would take more than the body itself.
    assert peak < size / 4
    assert largest < 512 * 1024 and chunks > 100

    document = json.loads(path.read_text(encoding="utf-8"))
    exported = [r for s in document["sessions"] for r in s["responses"]]
    assert len(exported) == 10_000
    stored = rows(
        db,
        """SELECT r.id, r.level, r.data FROM responses r JOIN sessions s ON s.id = r.session_id
                         WHERE s.guest_id = :g ORDER BY s.created_at DESC, r.created_at""",
        g=guest_row(db, key).id,
    )
    assert [(r["responseId"], r["level"], r["data"]) for r in exported] == [
        (str(r.id), r.level, r.data) for r in stored
    ]
    assert [s["sessionId"] for s in document["sessions"]] == sessions[::-1]


def test_the_document_is_one_snapshot_whatever_is_written_while_it_streams(api, db):
    key, (older, newer) = guest_with_sessions(api, 2)
    seed_responses(db, older, 1000)
    seed_responses(db, newer, 1000)
    last_of_older = rows(
        db, "SELECT id, data FROM responses WHERE session_id = :s ORDER BY created_at DESC LIMIT 1", s=older
    )[0]

    with api.stream("export_my_data", guest=key) as response:
        body = iter(response.response)
        first = next(body)
        # While the newer session's responses are on their way: a response in the older
        # session, a change to one of its responses, and a session of the same guest.
        guest_id = guest_row(db, key).id
        with db.begin() as conn:
            conn.execute(
                text("""INSERT INTO responses (id, session_id, visitor_number, data, created_at)
                                 SELECT gen_random_uuid(), id, visitor_number, '"late"', now() + interval '1 day'
                                 FROM sessions WHERE id = :s"""),
                {"s": older},
            )
            conn.execute(text("UPDATE responses SET data = '\"changed\"' WHERE id = :r"), {"r": last_of_older.id})
            conn.execute(
                text("""INSERT INTO sessions (id, visitor_number, guest_id, created_at)
                                 SELECT gen_random_uuid(), visitor_number, id, now() - interval '1 day'
                                 FROM guests WHERE id = :g"""),
                {"g": guest_id},
            )
        rest = b"".join(body)

    document = json.loads(first + rest)
    assert [s["sessionId"] for s in document["sessions"]] == [newer, older]
    assert [len(s["responses"]) for s in document["sessions"]] == [1000, 1000]
    assert document["sessions"][1]["responses"][-1] == {
        **document["sessions"][1]["responses"][-1],
        "responseId": str(last_of_older.id),
        "data": last_of_older.data,
    }
    assert b'"late"' not in rest and b'"changed"' not in rest
    assert scalar(db, "SELECT count(*) FROM responses") == 2001 and scalar(db, "SELECT count(*) FROM sessions") == 3


def test_a_database_failure_after_the_first_chunk_ends_the_document_unfinished(api, db, lines):
    key, (session_id,) = guest_with_sessions(api, 1)
    seed_responses(db, session_id, 1000)

    before = len(lines)
    with api.stream("export_my_data", guest=key) as response:
        assert response.status_code == 200
        body = iter(response.response)
        first = next(body)
        # The export's connection is cut while it waits for its next FETCH.
        cut = rows(
            db,
            """SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                          WHERE state = 'idle in transaction' AND query LIKE 'FETCH FORWARD%'""",
        )
        assert [tuple(r) for r in cut] == [(True,)]
        received = []
        with pytest.raises(StreamEndedEarly):  # what makes the server cut the connection
            for chunk in body:
                received.append(chunk)
        rest = b"".join(received)

    text_ = (first + rest).decode("utf-8")
    # Whole responses up to where it stopped, in a document that is not closed.
    assert text_.startswith('{"visitorNumber":1,') and text_.endswith('Z"}')
    with pytest.raises(json.JSONDecodeError):
        json.loads(text_)
    assert 1000 * 1000 > len(text_) > len(first)
    during = lines[before:]
    ended = [r for r in during if r.levelno >= logging.ERROR]
    assert [r.getMessage().split(" after ")[0] for r in ended] == ["export_my_data: the streamed answer ended early"]
    assert "DependencyUnavailable" in ended[0].getMessage()
    for record in during:  # no personal data in the export's lines: no key, no hash, no ids, no answers
        message = record.getMessage() + json.dumps(getattr(record, "fields", {}), default=str)
        assert key not in message and hashlib.sha256(key.encode()).hexdigest() not in message
        assert hashlib.md5(b"1").hexdigest() not in message and session_id not in message  # data, ids

    # The broken connection is not pooled again: the next export is whole.
    again = api.get("export_my_data", guest=key)
    assert again.status_code == 200 and len(again.json()["sessions"][0]["responses"]) == 1000
