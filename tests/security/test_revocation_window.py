"""TOKEN_REVOCATION_CHECK_SECONDS: how often a user's record is read from Firebase Auth for the
revocation check, and what a token is checked against in between (shared/web/auth.py).

As in production: the Auth emulator OFF, RS256 ID tokens verified by firebase-admin against a
local certificate server (devtools/google_endpoints.py), whose Auth API is passed on to the Auth
emulator and where every accounts:lookup, the call production sends to Google, is counted.
The functions are devtools.serve's (functions-framework's app of each function) served over
HTTP by a threaded server in this process, so that the revocation cache's clock can be moved
by the test instead of waited for.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from google.auth import jwt
from werkzeug.serving import make_server

from devtools.google_endpoints import signed_token
from devtools.ports import free_port
from tests.support import Api, assert_error, rows


class Clock:
    """The revocation cache's clock, moved by hand."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch) -> Clock:
    from shared.web import auth

    clock = Clock()
    monkeypatch.setattr(auth.revocations, "clock", clock)
    return clock


@pytest.fixture
def api(production_auth, clock, monkeypatch) -> Api:
    """Every function over HTTP, served in this process with production's token verification."""
    from devtools.serve import app

    monkeypatch.setenv("TOKEN_REVOCATION_CHECK_SECONDS", "300")
    server = make_server("127.0.0.1", free_port(), app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Api(f"http://127.0.0.1:{server.server_port}")
    server.shutdown()
    server.server_close()


def token_of(user, issued_at: int | None = None, **claims) -> str:
    issued_at = int(time.time()) if issued_at is None else issued_at
    return signed_token(user.uid, email=user.email, iat=issued_at, auth_time=issued_at, **claims)


def revoke_after(auth_emulator, user, token: str) -> None:
    """Revoke the user's tokens from the second after `token`'s iat (validSince has whole seconds;
    a new user's is its sign-up, so its first tokens are of that second)."""
    issued = jwt.decode(token, verify=False)["iat"]
    auth_emulator.revoke_tokens(user.uid, valid_since=issued + 1)


def wait_for_second(second: int) -> None:
    """Until the clock has reached `second` (a token issued then is not one of the future)."""
    while time.time() < second:
        time.sleep(0.05)


def create_session(api: Api, token: str):
    return api.post("create_session", {}, token=token)


def assert_revoked(response) -> None:
    error = assert_error(response, 401, "unauthenticated")
    assert "revoked" in error["message"]


def test_a_user_is_looked_up_once_per_window_whatever_its_requests(api, db, auth_emulator, google):
    ada, bob = auth_emulator.new_user(), auth_emulator.new_user()
    token = token_of(ada)

    for _ in range(5):
        assert create_session(api, token).status_code == 201
    assert api.get("get_visitor", token=token).status_code == 200
    assert create_session(api, token_of(bob)).status_code == 201

    assert google.looked_up == [ada.uid, bob.uid]
    assert rows(db, "SELECT user_id, count(*) FROM sessions GROUP BY 1 ORDER BY 2") == [(bob.uid, 1), (ada.uid, 5)]


def test_concurrent_first_requests_of_a_user_make_one_lookup(api, auth_emulator, google):
    token = token_of(auth_emulator.new_user())
    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(lambda _: create_session(api, token).status_code, range(16)))
    assert statuses == [201] * 16
    assert google.lookups == 1


def test_a_token_revoked_before_the_read_is_refused_within_the_window(api, db, auth_emulator, google):
    # The stolen-token case: the owner revokes, signs in again, and the new token is used
    # first; the thief's old token is still refused, on the record that request read.
    user = auth_emulator.new_user()
    stolen = token_of(user)
    revoke_after(auth_emulator, user, stolen)
    issued = jwt.decode(stolen, verify=False)["iat"] + 1
    wait_for_second(issued)
    fresh = token_of(user, issued_at=issued)

    assert create_session(api, fresh).status_code == 201
    assert_revoked(create_session(api, stolen))
    assert_revoked(api.get("get_visitor", token=stolen))

    assert google.lookups == 1
    assert rows(db, "SELECT count(*) FROM sessions") == [(1,)]


# The visitor-facing functions that read the user's record on every call: those that move or erase
# data for good, or hand it all out; all are called rarely. (The researchers' ones: below.)
FRESH = {"register": "POST", "delete_my_data": "POST", "create_claim_code": "POST", "export_my_data": "GET"}


def call(api: Api, function: str, token: str):
    if FRESH[function] == "GET":
        return api.get(function, token=token)
    return api.post(function, {}, token=token)


@pytest.mark.parametrize("function", list(FRESH))
def test_what_moves_erases_or_exports_data_reads_the_record_every_time(api, db, auth_emulator, google, function):
    user = auth_emulator.new_user()
    token = token_of(user)
    assert create_session(api, token).status_code == 201
    revoke_after(auth_emulator, user, token)  # after this instance's read

    # Within the window create_session still serves the token: the staleness the README states.
    assert create_session(api, token).status_code == 201
    assert google.lookups == 1
    # register, delete_my_data, create_claim_code and export_my_data read the record now, and
    # refuse the token at once ...
    assert_revoked(call(api, function, token))
    assert google.lookups == 2
    # ... and what they read is kept: the other functions refuse the token from then on.
    assert_revoked(create_session(api, token))
    assert google.lookups == 2
    assert rows(db, "SELECT count(*) FROM sessions") == [(2,)]
    assert rows(db, "SELECT count(*) FROM users") == [(1,)]


def test_the_researchers_functions_read_the_record_every_time(api, auth_emulator, google):
    researcher = auth_emulator.new_user()
    token = token_of(researcher, researcher=True)
    assert api.get("get_study_stats", token=token).status_code == 200
    assert api.get("get_study_stats", token=token).status_code == 200
    assert google.lookups == 2
    revoke_after(auth_emulator, researcher, token)
    for function in ("get_study_stats", "export_data"):
        assert_revoked(api.get(function, token=token))
    assert_revoked(api.post("erase_visitor", {"visitorNumber": 1}, token=token))


def test_the_record_is_read_again_once_the_window_has_passed(api, auth_emulator, google, clock, monkeypatch):
    monkeypatch.setenv("TOKEN_REVOCATION_CHECK_SECONDS", "60")
    user = auth_emulator.new_user()
    token = token_of(user)
    assert create_session(api, token).status_code == 201
    revoke_after(auth_emulator, user, token)

    clock.advance(59.9)
    assert create_session(api, token).status_code == 201
    assert google.lookups == 1
    clock.advance(0.1)
    assert_revoked(create_session(api, token))
    assert google.lookups == 2


def test_zero_reads_the_record_on_every_request(api, auth_emulator, google, monkeypatch):
    monkeypatch.setenv("TOKEN_REVOCATION_CHECK_SECONDS", "0")
    user = auth_emulator.new_user()
    token = token_of(user)
    for expected in (1, 2, 3):
        assert create_session(api, token).status_code == 201
        assert google.lookups == expected
    revoke_after(auth_emulator, user, token)
    assert_revoked(create_session(api, token))
    assert google.lookups == 4


def test_a_user_not_found_is_not_kept(api, auth_emulator, google):
    ghost = auth_emulator.new_user()
    ghost.uid = "never-signed-up"
    for expected in (1, 2):
        error = assert_error(create_session(api, token_of(ghost)), 401, "unauthenticated")
        assert "no longer exists" in error["message"]
        assert google.lookups == expected


def test_a_bad_setting_is_500_for_users_and_names_the_variable_in_the_log(api, auth_emulator, monkeypatch, lines):
    monkeypatch.setenv("TOKEN_REVOCATION_CHECK_SECONDS", "soon")
    assert_error(create_session(api, token_of(auth_emulator.new_user())), 500, "internal")
    assert any("TOKEN_REVOCATION_CHECK_SECONDS='soon' is not an integer" in record.getMessage() for record in lines)
