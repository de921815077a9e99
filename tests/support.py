"""Helpers the tests share: an HTTP client for the functions, guest keys,
Auth emulator users and tokens, and direct database reads."""

from __future__ import annotations

import base64
import json
import secrets
import time
import uuid
from dataclasses import dataclass

import requests
import sqlalchemy
from sqlalchemy import text

from shared.web.auth import hash_guest_key


def new_guest_key() -> str:
    """What the frontend makes once and keeps in localStorage."""
    return secrets.token_urlsafe(32)  # 43 characters of A-Z a-z 0-9 - _


class Api:
    """The functions over HTTP, as a browser frontend calls them."""

    def __init__(self, base_url: str):
        self.base_url = base_url
        self.http = requests.Session()

    def url(self, function: str) -> str:
        return f"{self.base_url}/{function}"

    def post(self, function: str, body=None, *, guest: str | None = None, token: str | None = None,
             headers: dict | None = None, **kwargs) -> requests.Response:
        return self.http.post(self.url(function), json=body, headers=request_headers(guest, token, headers), timeout=30,
                              allow_redirects=False,
                              **kwargs)

    def get(self, function: str, *, guest: str | None = None, token: str | None = None,
            headers: dict | None = None) -> requests.Response:
        return self.http.get(self.url(function), headers=request_headers(guest, token, headers), timeout=30,
                             allow_redirects=False)


def request_headers(guest, token, extra) -> dict:
    headers = dict(extra or {})
    if guest is not None:
        headers["X-Guest-Key"] = guest
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def assert_error(response: requests.Response, status: int, code: str) -> dict:
    """The SPEC's error shape: {"error": {"code", "message"}} with the matching status."""
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert "Traceback" not in response.text
    return body["error"]


@dataclass
class AuthUser:
    uid: str
    email: str | None
    id_token: str
    refresh_token: str


class AuthEmulatorClient:
    """Sign-ups and tokens through the Auth emulator's REST API (as the Firebase JS SDK does)."""

    def __init__(self, host: str, project: str):
        self.base = f"http://{host}"
        self.project = project

    def sign_up(self, email: str | None = None, password: str = "correct-horse-battery") -> AuthUser:
        """A new email/password user (a registered user); email=None makes an anonymous one."""
        body = {"returnSecureToken": True}
        if email is not None:
            body.update(email=email, password=password)
        response = requests.post(
            f"{self.base}/identitytoolkit.googleapis.com/v1/accounts:signUp?key=fake-api-key", json=body, timeout=10
        )
        response.raise_for_status()
        data = response.json()
        return AuthUser(data["localId"], email, data["idToken"], data["refreshToken"])

    def anonymous(self) -> AuthUser:
        """A new Firebase anonymous account (signInAnonymously): signUp with no email."""
        return self.sign_up(None)

    def link(self, anonymous: AuthUser, email: str | None = None,
             password: str = "correct-horse-battery") -> AuthUser:
        """Link an anonymous account to email/password in place (linkWithCredential): the
        same uid, and a fresh ID token of the now signed-in account."""
        email = email or f"linked-{uuid.uuid4().hex[:12]}@example.com"
        response = requests.post(
            f"{self.base}/identitytoolkit.googleapis.com/v1/accounts:update?key=fake-api-key",
            json={"idToken": anonymous.id_token, "email": email, "password": password, "returnSecureToken": True},
            timeout=10,
        )
        response.raise_for_status()
        data = response.json()
        assert data["localId"] == anonymous.uid
        return AuthUser(data["localId"], email, data["idToken"], data["refreshToken"])

    def new_user(self) -> AuthUser:
        return self.sign_up(f"user-{uuid.uuid4().hex[:12]}@example.com")

    def sign_in(self, email: str, password: str = "correct-horse-battery") -> AuthUser:
        """A fresh ID token of an existing email/password user (it carries the user's claims as they are now)."""
        response = requests.post(
            f"{self.base}/identitytoolkit.googleapis.com/v1/accounts:signInWithPassword?key=fake-api-key",
            json={"email": email, "password": password, "returnSecureToken": True}, timeout=10,
        )
        response.raise_for_status()
        data = response.json()
        return AuthUser(data["localId"], email, data["idToken"], data["refreshToken"])

    def researcher(self, claim=True) -> AuthUser:
        """A new user with the `researcher` custom claim (SPEC §10), signed in again so its token carries it."""
        user = self.new_user()
        self.set_claims(user.uid, {"researcher": claim})
        return self.sign_in(user.email)

    def set_claims(self, uid: str, claims: dict) -> None:
        """The Admin API call behind firebase-admin's set_custom_user_claims."""
        response = requests.post(
            f"{self.base}/identitytoolkit.googleapis.com/v1/projects/{self.project}/accounts:update",
            json={"localId": uid, "customAttributes": json.dumps(claims)},
            headers={"Authorization": "Bearer owner"}, timeout=10,
        )
        response.raise_for_status()

    def revoke_tokens(self, uid: str, valid_since: int) -> None:
        """The Admin API call behind firebase-admin's revoke_refresh_tokens."""
        response = requests.post(
            f"{self.base}/identitytoolkit.googleapis.com/v1/projects/{self.project}/accounts:update",
            json={"localId": uid, "validSince": str(valid_since)},
            headers={"Authorization": "Bearer owner"}, timeout=10,
        )
        response.raise_for_status()

    def crafted_token(self, uid: str, **overrides) -> str:
        """An unsigned token like the emulator's own, with chosen claims (expired, wrong audience, ...)."""
        now = int(time.time())
        claims = {
            "iss": f"https://securetoken.google.com/{self.project}",
            "aud": self.project,
            "auth_time": now,
            "user_id": uid,
            "sub": uid,
            "iat": now,
            "exp": now + 3600,
            "firebase": {"identities": {}, "sign_in_provider": "password"},
        }
        claims.update(overrides)
        return ".".join(
            [_b64({"alg": "none", "typ": "JWT"}), _b64(claims), ""]
        )


def _b64(value: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


def rows(engine: sqlalchemy.Engine, sql: str, **params) -> list:
    with engine.connect() as conn:
        return conn.execute(text(sql), params).all()


def scalar(engine: sqlalchemy.Engine, sql: str, **params):
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar()


def stop_numbering(db) -> None:
    """Make nextval('visitor_number_seq') fail, as when the sequence is exhausted."""
    with db.begin() as conn:
        # MAXVALUE must be above MINVALUE (1): a fresh sequence skips number 1 here.
        last = max(2, conn.execute(text("SELECT last_value FROM visitor_number_seq")).scalar())
        conn.execute(text(f"ALTER SEQUENCE visitor_number_seq MAXVALUE {int(last)}"))
        conn.execute(text("SELECT setval('visitor_number_seq', :v)"), {"v": last})


def resume_numbering(db) -> None:
    with db.begin() as conn:
        conn.execute(text("ALTER SEQUENCE visitor_number_seq NO MAXVALUE"))


# --- Visitors as a frontend makes them (through any Api) ------------------------

def new_session(api, **credentials) -> dict:
    response = api.post("create_session", {}, **credentials)
    assert response.status_code == 201, response.text
    return response.json()


def register(api, user=None, guest=None, body=None, **kwargs) -> requests.Response:
    return api.post("register", body if body is not None else {}, token=user.id_token if user else None,
                    guest=guest, **kwargs)


def guest_with_sessions(api, key, sessions=2, responses_each=2) -> list[dict]:
    """A guest that has used the site: sessions, each with responses."""
    made = []
    for i in range(sessions):
        session = api.post("create_session", {"experimentId": f"exp-{i}"}, guest=key).json()
        for level in range(responses_each):
            answer = api.post("submit_response", {"sessionId": session["sessionId"], "level": level,
                                                  "data": {"i": i}}, guest=key)
            assert answer.status_code == 201, answer.text
        made.append(session)
    return made


def guest_row(db, key):
    (row,) = rows(db, "SELECT * FROM guests WHERE key_hash = :h", h=hash_guest_key(key))
    return row
