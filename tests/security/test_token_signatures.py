"""ID tokens through firebase-admin's own signature checks, with the Auth emulator OFF.

With FIREBASE_AUTH_EMULATOR_HOST set, firebase-admin verifies no signature at all
(the emulator's tokens are unsigned), so the e2e tests cannot show that a forged
token is refused. Here the variable is unset and firebase-admin does what it does
in production: it fetches the public certificates and checks the RS256 signature,
audience, issuer and expiry, then (check_revoked) looks the user up.

There is no internet here, so Google's endpoints are one local server
(devtools/google_endpoints.py): the x509 certificates of securetoken, of a key made for
these tests, and Google's OAuth endpoint for the Admin SDK's own credentials; the Auth
API of the revocation check is passed on to the Auth emulator, which keeps the users and
their validSince.

Requests go through functions-framework's app for create_session, in this
process, against the stack's PostgreSQL: what the client saw and what was stored.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest
from functions_framework import create_app
from google.auth import jwt

from devtools.google_endpoints import new_key, signed_token
from devtools.ports import free_port
from devtools.stack import PROJECT, ROOT
from tests.support import new_guest_key, rows, scalar

TABLES = ("users", "guests", "sessions", "responses", "visitor_merges")


@pytest.fixture
def client(production_auth):
    return create_app("create_session", str(ROOT / "main.py")).test_client()


def table_counts(db) -> dict[str, int]:
    return {table: scalar(db, f"SELECT count(*) FROM {table}") for table in TABLES}


def post(client, token: str, **headers):
    return client.post("/", json={}, headers={"Authorization": f"Bearer {token}", **headers})


def assert_refused(client, db, token: str, status: int = 401, code: str = "unauthenticated") -> dict:
    before = table_counts(db)
    # A valid guest key beside a bad token: refused, never served as the guest.
    response = post(client, token, **{"X-Guest-Key": new_guest_key()})
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.get_json()["error"]["code"] == code
    assert set(response.get_json()) == {"error"}
    assert table_counts(db) == before
    return response.get_json()["error"]


def test_a_correctly_signed_token_is_accepted_and_stored_as_that_user(client, db, auth_emulator, google):
    user = auth_emulator.new_user()
    response = post(client, signed_token(user.uid, email=user.email))
    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.get_json()["userId"] == user.uid and response.get_json()["guestId"] is None
    assert rows(db, "SELECT id, email FROM users") == [(user.uid, user.email)]
    assert google.cert_requests >= 1  # the signature was checked against the served certificate


def test_a_token_signed_by_another_key_is_refused(client, db, auth_emulator):
    user = auth_emulator.new_user()
    forged = signed_token(user.uid, key=new_key())  # same kid, the attacker's key
    assert_refused(client, db, forged)


def test_a_token_whose_claims_were_changed_after_signing_is_refused(client, db, auth_emulator):
    victim, attacker = auth_emulator.new_user(), auth_emulator.new_user()
    header, _payload, signature = signed_token(attacker.uid).split(".")
    now = int(time.time())
    claims = {
        "iss": f"https://securetoken.google.com/{PROJECT}",
        "aud": PROJECT,
        "sub": victim.uid,
        "user_id": victim.uid,
        "iat": now,
        "exp": now + 3600,
        "auth_time": now,
    }
    payload = jwt._helpers.unpadded_urlsafe_b64encode(json.dumps(claims).encode()).decode()
    assert_refused(client, db, f"{header}.{payload}.{signature}")


def test_an_unsigned_token_like_the_emulators_is_refused(client, db, auth_emulator):
    user = auth_emulator.new_user()
    assert_refused(client, db, auth_emulator.crafted_token(user.uid))


def test_a_token_with_an_unknown_key_id_is_refused(client, db, auth_emulator):
    user = auth_emulator.new_user()
    assert_refused(client, db, signed_token(user.uid, kid="no-such-key"))


@pytest.mark.parametrize(
    "claims",
    [
        {"aud": "someone-elses-project"},
        {"iss": "https://securetoken.google.com/someone-elses-project"},
        {"aud": "someone-elses-project", "iss": "https://securetoken.google.com/someone-elses-project"},
        {"iss": "https://accounts.google.com"},
        {"sub": ""},
    ],
)
def test_a_signed_token_for_another_project_or_issuer_is_refused(client, db, auth_emulator, claims):
    user = auth_emulator.new_user()
    assert_refused(client, db, signed_token(user.uid, **claims))


def test_an_expired_signed_token_is_refused(client, db, auth_emulator):
    user = auth_emulator.new_user()
    now = int(time.time())
    error = assert_refused(client, db, signed_token(user.uid, iat=now - 7200, auth_time=now - 7200, exp=now - 3600))
    assert "expired" in error["message"]


def test_a_signed_token_issued_in_the_future_is_refused(client, db, auth_emulator):
    user = auth_emulator.new_user()
    now = int(time.time())
    assert_refused(client, db, signed_token(user.uid, iat=now + 600, exp=now + 4200))


def test_a_revoked_signed_token_is_refused(client, db, auth_emulator):
    user = auth_emulator.new_user()
    token = signed_token(user.uid)
    # Tokens issued before validSince are revoked (a second ahead: validSince has whole seconds).
    # A revocation made after this instance read the user's record: test_revocation_window.py.
    auth_emulator.revoke_tokens(user.uid, valid_since=int(time.time()) + 1)
    error = assert_refused(client, db, token)
    assert "revoked" in error["message"]


def test_a_signed_token_of_a_deleted_or_unknown_user_is_refused(client, db):
    assert_refused(client, db, signed_token(f"never-signed-up-{uuid.uuid4().hex[:8]}"))


def test_certificates_out_of_reach_answer_503_not_401(client, db, auth_emulator, monkeypatch):
    from firebase_admin import _token_gen

    from shared.web import auth

    monkeypatch.setattr(_token_gen, "ID_TOKEN_CERT_URI", f"http://127.0.0.1:{free_port()}/certs")
    auth.reset_firebase_app()
    user = auth_emulator.new_user()
    before = table_counts(db)
    response = post(client, signed_token(user.uid))
    assert response.status_code == 503 and response.get_json()["error"]["code"] == "unavailable"
    assert response.headers["Retry-After"]
    assert table_counts(db) == before


# --- X-Anonymous-Token (SPEC §13): the same checks as Authorization ---


@pytest.fixture
def register_client(production_auth):
    return create_app("register", str(ROOT / "main.py")).test_client()


def anonymous_token(uid: str, **overrides) -> str:
    return signed_token(uid, email=None, firebase={"identities": {}, "sign_in_provider": "anonymous"}, **overrides)


def claim_with(client, user, anonymous: str):
    return client.post(
        "/",
        json={},
        headers={"Authorization": f"Bearer {signed_token(user.uid, email=user.email)}", "X-Anonymous-Token": anonymous},
    )


def test_a_correctly_signed_anonymous_token_is_claimed(register_client, db, auth_emulator):
    user, anonymous = auth_emulator.new_user(), auth_emulator.anonymous()

    response = claim_with(register_client, user, anonymous_token(anonymous.uid))

    assert response.status_code == 201, response.get_data(as_text=True)
    assert rows(db, "SELECT id, claimed_by FROM users WHERE id = :a", a=anonymous.uid) == [(anonymous.uid, user.uid)]


@pytest.mark.parametrize("kind", ["another key", "unknown key id", "expired", "another project", "revoked"])
def test_a_forged_expired_or_revoked_anonymous_token_is_refused(register_client, db, auth_emulator, kind):
    user, anonymous = auth_emulator.new_user(), auth_emulator.anonymous()
    now = int(time.time())
    token = {
        "another key": lambda: signed_token(
            anonymous.uid, key=new_key(), email=None, firebase={"identities": {}, "sign_in_provider": "anonymous"}
        ),
        "unknown key id": lambda: signed_token(
            anonymous.uid, kid="no-such-key", email=None, firebase={"identities": {}, "sign_in_provider": "anonymous"}
        ),
        "expired": lambda: anonymous_token(anonymous.uid, iat=now - 7200, auth_time=now - 7200, exp=now - 3600),
        "another project": lambda: anonymous_token(anonymous.uid, aud="someone-elses-project"),
        "revoked": lambda: anonymous_token(anonymous.uid, iat=now - 5, auth_time=now - 5),
    }[kind]()
    if kind == "revoked":
        auth_emulator.revoke_tokens(anonymous.uid, valid_since=now)
    before = table_counts(db)

    response = claim_with(register_client, user, token)

    assert response.status_code == 401, response.get_data(as_text=True)
    assert response.get_json()["error"]["code"] == "unauthenticated"
    assert table_counts(db) == before


def test_a_signed_token_of_another_provider_in_the_header_is_400(register_client, db, auth_emulator):
    user, other = auth_emulator.new_user(), auth_emulator.new_user()
    before = table_counts(db)
    response = claim_with(register_client, user, signed_token(other.uid))
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "invalid_argument"
    assert table_counts(db) == before
