"""What the security tests share: a world with data in every table, and its snapshot; and
the functions' settings of production's ID token verification (the Auth emulator off)."""

from __future__ import annotations

import uuid

import pytest

from devtools.google_endpoints import GoogleEndpoints, service_account_file
from tests.support import new_guest_key, rows

TABLES = {"users": "id", "guests": "id", "sessions": "id", "responses": "id", "visitor_merges": "from_number"}


def snapshot(db, sequence: bool = True) -> dict:
    """Every row of every table and the sequence's position: a refused request changes none of it.

    sequence=False for refusals that SPEC §3 lets burn a number (a failed attempt may leave a gap).
    """
    state = {table: rows(db, f"SELECT * FROM {table} ORDER BY {key}") for table, key in TABLES.items()}
    if sequence:
        state["visitor_number_seq"] = rows(db, "SELECT last_value, is_called FROM visitor_number_seq")
    return state


class World:
    """A guest with a session and a response, and a registered user with the same, over HTTP."""

    def __init__(self, api, auth_emulator):
        self.api = api
        self.guest_key = new_guest_key()
        self.guest_session = self._session(guest=self.guest_key)
        self.user = auth_emulator.new_user()
        self.user_session = self._session(token=self.user.id_token)

    def _session(self, **credentials) -> dict:
        session = self.api.post("create_session", {"experimentId": "sec"}, **credentials)
        assert session.status_code == 201, session.text
        response = self.api.post(
            "submit_response",
            {"sessionId": session.json()["sessionId"], "responseId": str(uuid.uuid4()), "data": {"a": 1}},
            **credentials,
        )
        assert response.status_code == 201, response.text
        return session.json()


@pytest.fixture
def world(api, auth_emulator) -> World:
    return World(api, auth_emulator)


# --- ID tokens as in production: the Auth emulator off, Google's endpoints local ---


@pytest.fixture
def google(stack):
    """Google's endpoints on a local server (devtools/google_endpoints.py); the Auth API passed on to
    the stack's Auth emulator, its lookups counted."""
    with GoogleEndpoints(auth_emulator=stack.auth.host) as endpoints:
        yield endpoints


@pytest.fixture
def production_auth(stack, db, google, monkeypatch, tmp_path):
    """The functions' settings, in this process, without FIREBASE_AUTH_EMULATOR_HOST: firebase-admin
    verifies RS256 signatures against `google`'s certificates and reads users through it."""
    from shared.web import auth

    for name, value in stack.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("FIREBASE_AUTH_EMULATOR_HOST", raising=False)
    monkeypatch.setenv(
        "GOOGLE_APPLICATION_CREDENTIALS", service_account_file(tmp_path / "service-account.json", f"{google.url}/token")
    )
    google.point_firebase_admin_here(monkeypatch.setattr)
    auth.reset_firebase_app()  # the next request makes the app, and its auth client, with these settings
    yield
    auth.reset_firebase_app()
