"""Helpers the tests share: an HTTP client for the functions, guest keys, and direct
database reads. Auth emulator users and tokens: devtools.clients (shared with bench/)."""

from __future__ import annotations

import secrets

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

    def post(
        self,
        function: str,
        body=None,
        *,
        guest: str | None = None,
        token: str | None = None,
        headers: dict | None = None,
        **kwargs,
    ) -> requests.Response:
        return self.http.post(
            self.url(function),
            json=body,
            headers=request_headers(guest, token, headers),
            timeout=30,
            allow_redirects=False,
            **kwargs,
        )

    def get(
        self, function: str, *, guest: str | None = None, token: str | None = None, headers: dict | None = None
    ) -> requests.Response:
        return self.http.get(
            self.url(function), headers=request_headers(guest, token, headers), timeout=30, allow_redirects=False
        )


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
    return api.post(
        "register", body if body is not None else {}, token=user.id_token if user else None, guest=guest, **kwargs
    )


def guest_with_sessions(api, key, sessions=2, responses_each=2) -> list[dict]:
    """A guest that has used the site: sessions, each with responses."""
    made = []
    for i in range(sessions):
        session = api.post("create_session", {"experimentId": f"exp-{i}"}, guest=key).json()
        for level in range(responses_each):
            answer = api.post(
                "submit_response", {"sessionId": session["sessionId"], "level": level, "data": {"i": i}}, guest=key
            )
            assert answer.status_code == 201, answer.text
        made.append(session)
    return made


def guest_row(db, key):
    (row,) = rows(db, "SELECT * FROM guests WHERE key_hash = :h", h=hash_guest_key(key))
    return row


# What get_study_stats answers for an experiment without sessions.
EMPTY_STATS = {
    "visitors": 0,
    "registeredVisitors": 0,
    "sessions": 0,
    "responses": 0,
    "uploads": 0,
    "firstSessionAt": None,
    "lastSessionAt": None,
    "levels": [],
    "daily": [],
}
