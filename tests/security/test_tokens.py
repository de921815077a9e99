"""Bad ID tokens over HTTP, at every endpoint: 401 (403 for an anonymous account at
register) in the SPEC's error shape, never served as the guest sent beside them, and
nothing written. The stack's firebase-admin talks to the Auth emulator, which signs
nothing; signatures are tested in test_token_signatures.py."""

from __future__ import annotations

import time

import pytest

from tests.security.conftest import snapshot
from tests.support import assert_error, new_guest_key


def calls(world) -> dict:
    """One request per endpoint, each of which would write (or read) for a valid caller."""
    return {
        "create_session": lambda **c: world.api.post("create_session", {"experimentId": "x"}, **c),
        "submit_response": lambda **c: world.api.post(
            "submit_response", {"sessionId": world.user_session["sessionId"], "data": {"evil": True}}, **c
        ),
        "get_visitor": lambda **c: world.api.get("get_visitor", **c),
        "register": lambda **c: world.api.post("register", {"displayName": "Mallory"}, **c),
        "export_my_data": lambda **c: world.api.get("export_my_data", **c),
    }


def bad_tokens(auth_emulator, uid: str) -> dict[str, str]:
    now = int(time.time())
    return {
        "wrong audience": auth_emulator.crafted_token(uid, aud="someone-elses-project"),
        "wrong issuer": auth_emulator.crafted_token(uid, iss="https://securetoken.google.com/someone-elses-project"),
        "wrong project": auth_emulator.crafted_token(
            uid, aud="someone-elses-project", iss="https://securetoken.google.com/someone-elses-project"
        ),
        "expired": auth_emulator.crafted_token(uid, iat=now - 7200, auth_time=now - 7200, exp=now - 1),
        "unknown user": auth_emulator.crafted_token("no-such-user"),
        "no subject": auth_emulator.crafted_token(uid, sub=""),
        "custom token audience": auth_emulator.crafted_token(
            uid, aud="https://identitytoolkit.googleapis.com/google.identity.identitytoolkit.v1.IdentityToolkit"
        ),
        "not a JWT": "not-a-jwt",
        "truncated": "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0",
    }


@pytest.mark.parametrize(
    "kind",
    [
        "wrong audience",
        "wrong issuer",
        "wrong project",
        "expired",
        "unknown user",
        "no subject",
        "custom token audience",
        "not a JWT",
        "truncated",
    ],
)
def test_a_bad_token_is_401_everywhere_and_writes_nothing(world, db, auth_emulator, kind):
    token = bad_tokens(auth_emulator, world.user.uid)[kind]
    before = snapshot(db)
    for name, call in calls(world).items():
        alone = call(token=token)
        # Beside the key of an existing guest: still refused, never downgraded to that guest.
        beside_guest = call(token=token, guest=world.guest_key)
        for response in (alone, beside_guest):
            error = assert_error(response, 401, "unauthenticated")
            assert token not in response.text and world.guest_key not in response.text, name
            if kind == "expired":
                assert "expired" in error["message"]
    assert snapshot(db) == before


def test_a_revoked_token_is_401_everywhere_and_writes_nothing(world, db, auth_emulator):
    token = world.user.id_token
    assert world.api.get("get_visitor", token=token).status_code == 200
    auth_emulator.revoke_tokens(world.user.uid, valid_since=int(time.time()) + 1)
    before = snapshot(db)
    # The functions read the user's record at most every TOKEN_REVOCATION_CHECK_SECONDS, and
    # this instance read it before the revocation; register reads it at every call, and what
    # it reads is kept, so from then on every endpoint refuses the token (shared/web/auth.py).
    assert_error(world.api.post("register", {}, token=token), 401, "unauthenticated")
    for name, call in calls(world).items():
        for response in (call(token=token), call(token=token, guest=world.guest_key)):
            error = assert_error(response, 401, "unauthenticated")
            assert "revoked" in error["message"], name
    assert snapshot(db) == before


def test_an_anonymous_account_cannot_register_or_claim(world, db, auth_emulator):
    anonymous = auth_emulator.sign_up(None)
    before = snapshot(db)
    for credentials in ({"token": anonymous.id_token}, {"token": anonymous.id_token, "guest": world.guest_key}):
        error = assert_error(
            world.api.post("register", {"displayName": "Anon"}, **credentials), 403, "permission_denied"
        )
        assert "anonymous" in error["message"]
    # A registered user's token saying "anonymous" is refused the same way.
    crafted = auth_emulator.crafted_token(world.user.uid, firebase={"identities": {}, "sign_in_provider": "anonymous"})
    assert_error(world.api.post("register", {}, token=crafted, guest=world.guest_key), 403, "permission_denied")
    assert snapshot(db) == before


@pytest.mark.parametrize(
    "header", ["Bearer", "Bearer  ", "bearer", "Token abc", "Basic dXNlcjpwYXNz", "Bearer a b", "Bearer " + "A" * 8000]
)
def test_a_malformed_authorization_header_is_401_and_writes_nothing(world, db, header):
    before = snapshot(db)
    for call in calls(world).values():
        assert_error(call(headers={"Authorization": header}, guest=new_guest_key()), 401, "unauthenticated")
    assert snapshot(db) == before
