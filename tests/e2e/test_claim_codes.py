"""Claim codes (SPEC §13) over HTTP, against the real Auth emulator and PostgreSQL: a
guest (or anonymous account) on "device 1" makes a code, a signed-in user on "device 2"
redeems it with register. Single use, hashed at rest, expiring, replaced by a newer
one, and guessing limited per account across instances. What each side sees, and the rows."""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from devtools.ports import free_port
from devtools.stack import FunctionsServer
from shared.visitors import claim_codes
from tests.security.conftest import snapshot
from tests.support import Api, assert_error, guest_row, guest_with_sessions, new_guest_key, rows, scalar

CODE = re.compile(r"^[23456789ABCDEFGHJKMNPQRSTUVWXYZ]{8}$")


def make_code(api, **credentials) -> dict:
    answer = api.post("create_claim_code", {}, **credentials)
    assert answer.status_code == 201, answer.text
    return answer.json()


def redeem(api, user, code: str, **kwargs) -> requests.Response:
    return api.post("register", {"claimCode": code}, token=user.id_token, **kwargs)


def wrong_code(*right: str) -> str:
    while True:
        code = "".join(secrets.choice(claim_codes.ALPHABET) for _ in range(8))
        if code not in right:
            return code


def test_a_code_made_by_a_guest_claims_it_for_the_user_who_enters_it(api, db, auth_emulator):
    key = new_guest_key()  # device 1
    made = guest_with_sessions(api, key, sessions=2, responses_each=1)  # number 1
    user = auth_emulator.new_user()  # device 2, with a number of its own
    assert api.post("create_session", {}, token=user.id_token).json()["visitorNumber"] == 2

    answer = api.post("create_claim_code", {}, guest=key)

    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert set(body) == {"claimCode", "expiresAt"} and CODE.match(body["claimCode"])
    expires_at = datetime.fromisoformat(body["expiresAt"].replace("Z", "+00:00"))
    assert timedelta(seconds=590) < expires_at - datetime.now(UTC) <= timedelta(seconds=600)
    (stored,) = rows(db, "SELECT * FROM claim_codes")
    assert stored.code_hash == hashlib.sha256(body["claimCode"].encode()).digest()  # only the hash is kept
    assert (stored.guest_id, stored.user_id, stored.used_at) == (guest_row(db, key).id, None, None)
    assert body["claimCode"] not in repr(stored)

    # Typed on device 2 as a person might: lower case, with a dash.
    typed = f"{body['claimCode'][:4].lower()}-{body['claimCode'][4:].lower()}"
    registered = redeem(api, user, typed)

    assert registered.status_code == 200, registered.text
    result = registered.json()
    assert (result["migrated"], result["migratedSessions"], result["mergedFromVisitorNumber"]) == (True, 2, 1)
    assert result["user"]["visitorNumber"] == 2
    assert guest_row(db, key).claimed_by == user.uid
    assert rows(db, "SELECT DISTINCT user_id, visitor_number FROM sessions") == [(user.uid, 2)]
    assert rows(db, "SELECT DISTINCT visitor_number FROM responses") == [(2,)]
    assert rows(db, "SELECT from_number, to_number FROM visitor_merges") == [(1, 2)]
    (used,) = rows(db, "SELECT used_by, used_at FROM claim_codes")
    assert used.used_by == user.uid and used.used_at is not None
    # The right code was not counted against the user.
    assert rows(db, "SELECT cardinality(failed_at) FROM claim_code_attempts") == [(0,)]
    # Device 1's guest key is done.
    assert_error(api.post("create_session", {}, guest=key), 403, "guest_claimed")
    assert_error(api.post("create_claim_code", {}, guest=key), 403, "guest_claimed")
    assert {s["sessionId"] for s in made} <= {
        s["sessionId"] for s in api.get("get_visitor", token=user.id_token).json()["sessions"]
    }


def test_a_used_code_is_refused_to_anyone_else_and_harmless_to_its_user(api, db, auth_emulator):
    key = new_guest_key()
    guest_with_sessions(api, key, sessions=1, responses_each=1)
    code = make_code(api, guest=key)["claimCode"]
    user, other = auth_emulator.new_user(), auth_emulator.new_user()
    assert redeem(api, user, code).status_code == 201
    before = snapshot(db)

    error = assert_error(redeem(api, other, code), 400, "invalid_argument")
    assert "wrong, used or expired" in error["message"]
    again = redeem(api, user, code)
    assert again.status_code == 200 and (again.json()["migrated"], again.json()["migratedSessions"]) == (False, 0)

    assert snapshot(db) == before  # the other account was not even created
    assert rows(db, "SELECT user_id, cardinality(failed_at) FROM claim_code_attempts ORDER BY 2") == [
        (user.uid, 0),
        (other.uid, 1),
    ]


def test_a_new_code_replaces_the_unused_one(api, db, auth_emulator):
    key = new_guest_key()
    guest_with_sessions(api, key, sessions=1, responses_each=0)
    first, second = make_code(api, guest=key)["claimCode"], make_code(api, guest=key)["claimCode"]
    assert scalar(db, "SELECT count(*) FROM claim_codes") == 1
    user = auth_emulator.new_user()

    assert_error(redeem(api, user, first), 400, "invalid_argument")
    assert guest_row(db, key).claimed_by is None
    assert redeem(api, user, second).json()["migratedSessions"] == 1


def test_an_expired_code_is_refused(stack, db, auth_emulator, tmp_path: Path):
    """Functions served with CLAIM_CODE_TTL_SECONDS=1: the code is refused once PostgreSQL's clock passes it."""
    server = FunctionsServer(
        free_port(), {**stack.env(), "CLAIM_CODE_TTL_SECONDS": "1"}, tmp_path / "functions.log"
    ).start()
    try:
        api = Api(server.url)
        key = new_guest_key()
        guest_with_sessions(api, key, sessions=1, responses_each=0)
        code = make_code(api, guest=key)
        expires_at = datetime.fromisoformat(code["expiresAt"].replace("Z", "+00:00"))
        assert expires_at - datetime.now(UTC) <= timedelta(seconds=1)
        deadline = time.monotonic() + 10
        while scalar(db, "SELECT now() < expires_at FROM claim_codes"):  # until the database's clock passes it
            assert time.monotonic() < deadline
            time.sleep(0.05)
        user = auth_emulator.new_user()

        assert_error(redeem(api, user, code["claimCode"]), 400, "invalid_argument")

        assert guest_row(db, key).claimed_by is None
        assert scalar(db, "SELECT used_at FROM claim_codes") is None
        assert scalar(db, "SELECT count(*) FROM users") == 0
    finally:
        server.stop()


def test_five_wrong_codes_then_the_right_one_is_429(api, db, auth_emulator):
    key = new_guest_key()
    guest_with_sessions(api, key, sessions=1, responses_each=0)
    right = make_code(api, guest=key)["claimCode"]
    guesser = auth_emulator.new_user()
    for _ in range(claim_codes.MAX_WRONG_CODES):
        assert_error(redeem(api, guesser, wrong_code(right)), 400, "invalid_argument")
    # A malformed code cannot be a guess: refused, not counted, and it still says why.
    assert_error(redeem(api, guesser, "0O1I"), 400, "invalid_argument")

    refused = redeem(api, guesser, right)

    error = assert_error(refused, 429, "resource_exhausted")
    assert "Too many wrong claim codes" in error["message"]
    assert 1 <= int(refused.headers["Retry-After"]) <= claim_codes.WRONG_CODE_WINDOW_SECONDS
    assert guest_row(db, key).claimed_by is None and scalar(db, "SELECT used_at FROM claim_codes") is None
    assert rows(db, "SELECT user_id, cardinality(failed_at) FROM claim_code_attempts") == [
        (guesser.uid, claim_codes.MAX_WRONG_CODES)
    ]
    # The limit is the guesser's: another account redeems the code.
    assert redeem(api, auth_emulator.new_user(), right).status_code == 201


def test_two_users_redeeming_one_code_at_once_exactly_one_claims(api, db, auth_emulator):
    for round_number in range(10):
        key = new_guest_key()
        guest_with_sessions(api, key, sessions=1, responses_each=1)
        code = make_code(api, guest=key)["claimCode"]
        users = [auth_emulator.new_user() for _ in range(2)]
        barrier = threading.Barrier(len(users))

        def redeem_at_once(user):
            http = requests.Session()
            barrier.wait()
            return http.post(
                api.url("register"),
                json={"claimCode": code},
                timeout=30,
                headers={"Authorization": f"Bearer {user.id_token}"},
            )

        with ThreadPoolExecutor(len(users)) as pool:
            answers = list(pool.map(redeem_at_once, users))

        assert sorted(a.status_code for a in answers) == [201, 400], [a.text for a in answers]
        (winner,) = [u for u, a in zip(users, answers) if a.status_code == 201]
        (loser,) = [a for a in answers if a.status_code == 400]
        assert_error(loser, 400, "invalid_argument")
        assert guest_row(db, key).claimed_by == winner.uid, f"round {round_number}"
        assert scalar(db, "SELECT used_by FROM claim_codes WHERE guest_id = :g", g=guest_row(db, key).id) == winner.uid
        assert rows(db, "SELECT DISTINCT user_id FROM sessions WHERE guest_id = :g", g=guest_row(db, key).id) == [
            (winner.uid,)
        ]


def test_an_anonymous_account_makes_a_code_and_is_claimed_by_it(api, db, auth_emulator):
    anonymous = auth_emulator.anonymous()
    session = api.post("create_session", {}, token=anonymous.id_token).json()
    code = make_code(api, token=anonymous.id_token)["claimCode"]
    assert rows(db, "SELECT user_id, guest_id FROM claim_codes") == [(anonymous.uid, None)]
    user = auth_emulator.new_user()

    registered = redeem(api, user, code)

    assert registered.status_code == 201 and registered.json()["migratedSessions"] == 1
    assert registered.json()["user"]["visitorNumber"] == session["visitorNumber"]
    assert rows(db, "SELECT user_id FROM sessions") == [(user.uid,)]
    assert rows(db, "SELECT claimed_by, visitor_number FROM users WHERE id = :a", a=anonymous.uid) == [(user.uid, None)]
    assert_error(api.post("create_session", {}, token=anonymous.id_token), 403, "guest_claimed")


def test_who_may_make_a_code(api, db, auth_emulator):
    signed_in = auth_emulator.new_user()
    api.post("create_session", {}, token=signed_in.id_token)
    before = snapshot(db)

    error = assert_error(api.post("create_claim_code", {}, token=signed_in.id_token), 403, "permission_denied")
    assert "sign in" in error["message"]
    assert_error(api.post("create_claim_code", {}, guest=new_guest_key()), 404, "not_found")  # no session yet
    assert_error(api.post("create_claim_code", {}, token=auth_emulator.anonymous().id_token), 404, "not_found")
    assert_error(api.post("create_claim_code", {}), 401, "unauthenticated")
    assert_error(api.post("create_claim_code", {}, guest="short"), 400, "invalid_argument")
    assert_error(api.post("create_claim_code", {}, token="not-a-token"), 401, "unauthenticated")
    assert_error(api.get("create_claim_code", guest=new_guest_key()), 405, "method_not_allowed")
    assert snapshot(db) == before and scalar(db, "SELECT count(*) FROM claim_codes") == 0


def test_register_takes_one_visitor_to_claim_at_a_time(api, db, auth_emulator):
    key = new_guest_key()
    guest_with_sessions(api, key, sessions=1, responses_each=0)
    code = make_code(api, guest=key)["claimCode"]
    user = auth_emulator.new_user()
    assert_error(redeem(api, user, code, guest=new_guest_key()), 400, "invalid_argument")
    assert_error(api.post("register", {"claimCode": 12345678}, token=user.id_token), 400, "invalid_argument")
    assert_error(api.post("register", {"claimCode": "A" * 40}, token=user.id_token), 400, "invalid_argument")
    assert scalar(db, "SELECT count(*) FROM users") == 0
    assert scalar(db, "SELECT count(*) FROM claim_code_attempts") == 0  # none of these was a guess


@pytest.fixture
def second_instance(stack, tmp_path: Path):
    """Another function instance on the same database, as Cloud Run would start."""
    server = FunctionsServer(free_port(), stack.env(), tmp_path / "functions-2.log").start()
    yield Api(server.url)
    server.stop()


def test_the_wrong_code_limit_holds_across_instances(api, second_instance, db, auth_emulator):
    key = new_guest_key()
    guest_with_sessions(api, key, sessions=1, responses_each=0)
    right = make_code(api, guest=key)["claimCode"]
    guesser = auth_emulator.new_user()
    for attempt in range(claim_codes.MAX_WRONG_CODES):
        instance = (api, second_instance)[attempt % 2]
        assert_error(redeem(instance, guesser, wrong_code(right)), 400, "invalid_argument")
    for instance in (api, second_instance):
        assert_error(redeem(instance, guesser, right), 429, "resource_exhausted")
