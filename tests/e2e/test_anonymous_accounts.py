"""Firebase anonymous accounts as visitors (SPEC §13), over HTTP against the real Auth
emulator and PostgreSQL: their sessions are theirs by uid, linking keeps everything in
place, and register with X-Anonymous-Token claims them into an existing account like a
guest claim. What the frontend sees, and every row."""

from __future__ import annotations

import base64
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.security.conftest import snapshot
from tests.support import assert_error, new_guest_key, new_session, register, rows, scalar


def with_sessions(api, token: str, sessions: int = 2, responses_each: int = 2) -> list[dict]:
    made = []
    for i in range(sessions):
        session = api.post("create_session", {"experimentId": f"anon-{i}"}, token=token)
        assert session.status_code == 201, session.text
        for level in range(responses_each):
            answer = api.post(
                "submit_response",
                {"sessionId": session.json()["sessionId"], "level": level, "data": {"i": i}},
                token=token,
            )
            assert answer.status_code == 201, answer.text
        made.append(session.json())
    return made


def claim(api, user, anonymous, **kwargs):
    return api.post("register", {}, token=user.id_token, headers={"X-Anonymous-Token": anonymous.id_token}, **kwargs)


def user_row(db, uid):
    (row,) = rows(db, "SELECT * FROM users WHERE id = :id", id=uid)
    return row


def test_an_anonymous_accounts_sessions_are_its_own(api, db, auth_emulator):
    anonymous = auth_emulator.anonymous()
    made = with_sessions(api, anonymous.id_token)

    assert {s["userId"] for s in made} == {anonymous.uid} and {s["guestId"] for s in made} == {None}
    assert {s["visitorNumber"] for s in made} == {1}
    visitor = api.get("get_visitor", token=anonymous.id_token).json()
    assert (visitor["userId"], visitor["visitorNumber"]) == (anonymous.uid, 1)
    assert [s["responseCount"] for s in visitor["sessions"]] == [2, 2]
    assert rows(db, "SELECT id, email, visitor_number, claimed_by FROM users") == [(anonymous.uid, None, 1, None)]
    assert rows(db, "SELECT DISTINCT user_id, guest_id, visitor_number FROM sessions") == [(anonymous.uid, None, 1)]
    assert rows(db, "SELECT DISTINCT visitor_number FROM responses") == [(1,)]
    # Another visitor cannot write into them.
    other = auth_emulator.anonymous()
    assert_error(
        api.post("submit_response", {"sessionId": made[0]["sessionId"], "data": 1}, token=other.id_token),
        403,
        "permission_denied",
    )


def test_linking_the_account_then_registering_keeps_everything_in_place(api, db, auth_emulator):
    anonymous = auth_emulator.anonymous()
    made = with_sessions(api, anonymous.id_token)
    sessions_before = rows(db, "SELECT * FROM sessions ORDER BY id")
    responses_before = rows(db, "SELECT * FROM responses ORDER BY id")

    # Setting a password revokes the tokens issued before that second (validSince), as Firebase
    # does: let the clock pass the anonymous token's second, so that its old token is one of them.
    issued = json.loads(base64.urlsafe_b64decode(anonymous.id_token.split(".")[1] + "=="))["iat"]
    while time.time() < issued + 1:
        time.sleep(0.05)
    linked = auth_emulator.link(anonymous)  # linkWithCredential: same uid, now a password account
    registered = register(api, linked, body={"displayName": "Linked"})

    assert registered.status_code == 200, registered.text  # create_session made the users row already
    body = registered.json()
    assert (body["migrated"], body["migratedSessions"], body["mergedFromVisitorNumber"]) == (False, 0, None)
    assert body["user"]["id"] == anonymous.uid and body["user"]["email"] == linked.email
    assert body["user"]["visitorNumber"] == made[0]["visitorNumber"] == 1
    assert rows(db, "SELECT * FROM sessions ORDER BY id") == sessions_before
    assert rows(db, "SELECT * FROM responses ORDER BY id") == responses_before
    row = user_row(db, anonymous.uid)
    assert (row.email, row.display_name, row.visitor_number, row.claimed_by) == (linked.email, "Linked", 1, None)
    assert scalar(db, "SELECT count(*) FROM visitor_merges") == 0
    # The same uid goes on, now signed in.
    assert new_session(api, token=linked.id_token)["visitorNumber"] == 1
    # Its old anonymous token was revoked by the link: claiming with it is refused.
    other = auth_emulator.new_user()
    assert_error(claim(api, other, anonymous), 401, "unauthenticated")


def test_signing_in_to_an_existing_account_claims_the_anonymous_one(api, db, auth_emulator):
    existing = auth_emulator.new_user()
    assert new_session(api, token=existing.id_token)["visitorNumber"] == 1
    anonymous = auth_emulator.anonymous()
    made = with_sessions(api, anonymous.id_token)  # number 2
    session_ids = {s["sessionId"] for s in made}

    claimed = claim(api, existing, anonymous)

    assert claimed.status_code == 200, claimed.text
    body = claimed.json()
    assert (body["migrated"], body["migratedSessions"], body["mergedFromVisitorNumber"]) == (True, 2, 2)
    assert body["user"]["id"] == existing.uid and body["user"]["visitorNumber"] == 1
    assert {
        (str(r.id), r.user_id, r.visitor_number)
        for r in rows(
            db,
            "SELECT id, user_id, visitor_number FROM sessions WHERE id = ANY(CAST(:ids AS uuid[]))",
            ids=list(session_ids),
        )
    } == {(s, existing.uid, 1) for s in session_ids}
    assert rows(db, "SELECT DISTINCT visitor_number FROM responses") == [(1,)]
    assert scalar(db, "SELECT count(*) FROM responses") == 4
    assert rows(db, "SELECT from_number, to_number, user_id FROM visitor_merges") == [(2, 1, existing.uid)]
    row = user_row(db, anonymous.uid)
    assert (row.claimed_by, row.visitor_number) == (existing.uid, None) and row.claimed_at is not None
    visitor = api.get("get_visitor", token=existing.id_token).json()
    assert len(visitor["sessions"]) == 3 and visitor["visitorNumber"] == 1

    # Again: harmless.
    before = snapshot(db)
    again = claim(api, existing, anonymous)
    assert again.status_code == 200
    assert (again.json()["migrated"], again.json()["migratedSessions"]) == (False, 0)
    assert snapshot(db) == before

    # Another account claiming it: 409, nothing changes (not even that account's users row).
    assert_error(claim(api, auth_emulator.new_user(), anonymous), 409, "conflict")
    assert snapshot(db) == before

    # The anonymous uid is done: guest_claimed wherever it calls.
    for answer in (
        api.post("create_session", {}, token=anonymous.id_token),
        api.post("submit_response", {"sessionId": made[0]["sessionId"], "data": 1}, token=anonymous.id_token),
        api.get("get_visitor", token=anonymous.id_token),
        api.get("export_my_data", token=anonymous.id_token),
        api.post("create_claim_code", {}, token=anonymous.id_token),
    ):
        assert_error(answer, 403, "guest_claimed")
    assert snapshot(db) == before


def test_a_user_without_a_number_takes_the_anonymous_accounts(api, db, auth_emulator):
    anonymous = auth_emulator.anonymous()
    with_sessions(api, anonymous.id_token, sessions=1, responses_each=1)  # number 1
    new_user = auth_emulator.new_user()

    claimed = claim(api, new_user, anonymous)

    assert claimed.status_code == 201, claimed.text
    body = claimed.json()
    assert (body["user"]["visitorNumber"], body["migratedSessions"], body["mergedFromVisitorNumber"]) == (1, 1, None)
    assert (user_row(db, new_user.uid).visitor_number, user_row(db, anonymous.uid).visitor_number) == (1, None)
    assert rows(db, "SELECT DISTINCT user_id, visitor_number FROM sessions") == [(new_user.uid, 1)]
    assert scalar(db, "SELECT count(*) FROM visitor_merges") == 0
    assert scalar(db, "SELECT last_value FROM visitor_number_seq") == 1  # no number taken


def test_an_anonymous_account_that_never_made_a_session_is_recorded_as_claimed(api, db, auth_emulator):
    anonymous, user = auth_emulator.anonymous(), auth_emulator.new_user()

    claimed = claim(api, user, anonymous)

    assert claimed.status_code == 201 and claimed.json()["migratedSessions"] == 0
    row = user_row(db, anonymous.uid)
    assert (row.claimed_by, row.visitor_number) == (user.uid, None)
    assert_error(api.post("create_session", {}, token=anonymous.id_token), 403, "guest_claimed")
    assert scalar(db, "SELECT count(*) FROM sessions") == 0


def test_the_header_must_hold_a_valid_anonymous_token(api, db, auth_emulator):
    anonymous = auth_emulator.anonymous()
    with_sessions(api, anonymous.id_token, sessions=1, responses_each=0)
    user, password_user = auth_emulator.new_user(), auth_emulator.new_user()
    new_session(api, token=password_user.id_token)
    before = snapshot(db)
    now = int(time.time())

    def claim_with(token):
        return api.post("register", {}, token=user.id_token, headers={"X-Anonymous-Token": token})

    error = assert_error(claim_with(password_user.id_token), 400, "invalid_argument")
    assert "anonymous" in error["message"]
    expired = auth_emulator.crafted_token(
        anonymous.uid,
        iat=now - 7200,
        auth_time=now - 7200,
        exp=now - 1,
        firebase={"identities": {}, "sign_in_provider": "anonymous"},
    )
    assert "expired" in assert_error(claim_with(expired), 401, "unauthenticated")["message"]
    for forged in (
        auth_emulator.crafted_token(
            anonymous.uid, aud="someone-elses-project", firebase={"identities": {}, "sign_in_provider": "anonymous"}
        ),
        auth_emulator.crafted_token("no-such-user", firebase={"identities": {}, "sign_in_provider": "anonymous"}),
        "not-a-jwt",
        "",
    ):
        answer = claim_with(forged)
        assert_error(answer, 401, "unauthenticated")
        assert not forged or forged not in answer.text
    # Only one visitor per call.
    both = api.post(
        "register", {}, token=user.id_token, guest=new_guest_key(), headers={"X-Anonymous-Token": anonymous.id_token}
    )
    assert_error(both, 400, "invalid_argument")
    assert snapshot(db) == before  # user's register never happened: no users row for it


@pytest.mark.slow
def test_create_session_racing_the_claim_of_an_anonymous_account_leaves_nothing_with_it(api, db, auth_emulator):
    """50 rounds: two create_session calls for anonymous account A sent at the same moment as
    register of B with A's token. Each session lands before the claim (and is moved) or
    sees it (guest_claimed); none is left with A."""
    creators = 2
    http = [requests.Session() for _ in range(creators + 1)]
    outcomes = {"created": 0, "refused": 0}
    for round_number in range(50):
        anonymous, user = auth_emulator.anonymous(), auth_emulator.new_user()
        if round_number % 3:  # a third of the rounds: A's very first session races the claim
            new_session(api, token=anonymous.id_token)
        if round_number % 2:  # half the rounds merge into a user who already has a number
            new_session(api, token=user.id_token)
        barrier = threading.Barrier(creators + 1)

        def create(client):
            barrier.wait()
            return client.post(
                api.url("create_session"),
                json={},
                timeout=30,
                headers={"Authorization": f"Bearer {anonymous.id_token}"},
            )

        def claim_it(client):
            barrier.wait()
            return client.post(
                api.url("register"),
                json={},
                timeout=30,
                headers={"Authorization": f"Bearer {user.id_token}", "X-Anonymous-Token": anonymous.id_token},
            )

        with ThreadPoolExecutor(creators + 1) as pool:
            creates = [pool.submit(create, client) for client in http[:creators]]
            registering = pool.submit(claim_it, http[creators])
            created, registered = [f.result() for f in creates], registering.result()

        assert registered.status_code in (200, 201), registered.text
        assert user_row(db, anonymous.uid).claimed_by == user.uid
        user_number = registered.json()["user"]["visitorNumber"]
        for answer in created:
            if answer.status_code == 201:
                outcomes["created"] += 1
                assert rows(
                    db, "SELECT user_id, visitor_number FROM sessions WHERE id = :id", id=answer.json()["sessionId"]
                ) == [(user.uid, user_number)], f"round {round_number}"
            else:
                outcomes["refused"] += 1
                assert_error(answer, 403, "guest_claimed")
        assert scalar(db, "SELECT count(*) FROM sessions WHERE user_id = :a", a=anonymous.uid) == 0, (
            f"round {round_number}: a session was left with the claimed anonymous account"
        )
        assert user_row(db, anonymous.uid).visitor_number is None
    assert sum(outcomes.values()) == 100
    print(f"race outcomes over 50 rounds: {outcomes}")
