"""No oracle: a refusal says what SPEC documents (403 someone else's session, 404 an
unknown one, 409 someone else's sessionId) and nothing about whose it is; the guest
key is a secret that is never stored, echoed or logged."""

from __future__ import annotations

import hashlib
import uuid

from tests.security.conftest import TABLES, snapshot
from tests.support import assert_error, new_guest_key, rows

# Headers whose values may differ between two answers of the same kind.
VARYING = {"Date", "Content-Length"}


def shape(response) -> tuple:
    """What a client can compare between two answers: status, header names and fixed values, body."""
    headers = {name: (value if name not in VARYING else "*") for name, value in response.headers.items()}
    return response.status_code, tuple(sorted(headers.items())), response.content


def submit(api, session_id: str, **credentials):
    return api.post("submit_response", {"sessionId": session_id, "data": {"probe": 1}}, **credentials)


def test_someone_elses_session_answers_the_same_whoever_owns_it(world, api, auth_emulator, db):
    # A third session: a guest claimed by a registered user (the session now belongs to the user).
    claimed_key, claimer = new_guest_key(), auth_emulator.new_user()
    claimed = api.post("create_session", {}, guest=claimed_key).json()
    assert api.post("register", {}, token=claimer.id_token, guest=claimed_key).status_code in (200, 201)
    owners = [world.guest_session, world.user_session, claimed]

    stranger_key, stranger = new_guest_key(), auth_emulator.new_user()
    assert api.post("create_session", {}, guest=stranger_key).status_code == 201
    before = snapshot(db)
    for credentials in ({"guest": stranger_key}, {"guest": new_guest_key()}, {"token": stranger.id_token}):
        answers = [submit(api, session["sessionId"], **credentials) for session in owners]
        for answer in answers:
            assert_error(answer, 403, "permission_denied")
        assert len({shape(answer) for answer in answers}) == 1, [a.text for a in answers]
        leaked = (
            [world.user.uid, claimer.uid, world.guest_session["guestId"], "sec"]
            + [str(s["visitorNumber"]) for s in owners]
            + [s["sessionId"] for s in owners]
        )
        assert not any(value in answers[0].text for value in leaked)
    assert snapshot(db) == before


def test_unknown_sessions_answer_the_same_and_echo_nothing(world, api, db):
    before = snapshot(db)
    ids = [str(uuid.uuid4()) for _ in range(3)]
    for credentials in ({"guest": world.guest_key}, {"token": world.user.id_token}, {"guest": new_guest_key()}):
        answers = [submit(api, session_id, **credentials) for session_id in ids]
        for answer, session_id in zip(answers, ids):
            assert_error(answer, 404, "not_found")
            assert session_id not in answer.text
        assert len({shape(answer) for answer in answers}) == 1
    assert snapshot(db) == before


def test_403_and_404_differ_only_in_status_and_error(world, api, db):
    """The documented rule, and no more: the same headers, the same kind of body."""
    stranger = new_guest_key()
    denied = submit(api, world.user_session["sessionId"], guest=stranger)
    missing = submit(api, str(uuid.uuid4()), guest=stranger)
    assert (denied.status_code, missing.status_code) == (403, 404)
    assert sorted(denied.headers.keys()) == sorted(missing.headers.keys())
    assert {k: v for k, v in denied.headers.items() if k not in VARYING} == {
        k: v for k, v in missing.headers.items() if k not in VARYING
    }
    assert set(denied.json()["error"]) == set(missing.json()["error"]) == {"code", "message"}


def test_someone_elses_session_id_at_create_session_is_the_same_409_for_any_owner(world, api, auth_emulator, db):
    stranger = auth_emulator.new_user()
    before = snapshot(db, sequence=False)
    answers = [
        api.post("create_session", {"sessionId": s["sessionId"]}, **credentials)
        for s in (world.guest_session, world.user_session)
        for credentials in ({"guest": new_guest_key()}, {"token": stranger.id_token})
    ]
    for answer in answers:
        assert_error(answer, 409, "conflict")
    assert len({shape(answer) for answer in answers}) == 1
    # Not even the new guest or user of a refused request (its number is a gap SPEC §3 allows).
    assert snapshot(db, sequence=False) == before


def test_the_guest_key_is_stored_only_as_its_sha256_and_never_echoed_or_logged(stack, api, db):
    key = new_guest_key()
    answers = [api.post("create_session", {"metadata": {"k": "v"}}, guest=key)]
    session_id = answers[0].json()["sessionId"]
    answers += [
        submit(api, session_id, guest=key),
        api.get("get_visitor", guest=key),
        api.get("export_my_data", guest=key),
        submit(api, str(uuid.uuid4()), guest=key),
        api.post("create_session", {"sessionId": "bad"}, guest=key),
    ]
    for answer in answers:
        assert key not in answer.text and key not in str(answer.headers)

    assert rows(db, "SELECT key_hash FROM guests") == [(hashlib.sha256(key.encode()).digest(),)]
    dump = " ".join(str(row) for table in TABLES for row in rows(db, f"SELECT t::text FROM {table} t"))
    assert key not in dump
    assert key not in (stack.workdir / "functions.log").read_text(errors="replace")
