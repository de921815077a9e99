"""Clients of the local stack that the tests and the benchmarks share: users and ID tokens
through the Auth emulator's REST API (as the Firebase JS SDK makes them), and Cloud Storage
`finalized` CloudEvents sent to on_upload_finalized over HTTP as Eventarc sends them (binary
content mode). Development and test tooling only: nothing here is deployed."""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import requests


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
        body: dict[str, Any] = {"returnSecureToken": True}
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

    def link(self, anonymous: AuthUser, email: str | None = None, password: str = "correct-horse-battery") -> AuthUser:
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
            json={"email": email, "password": password, "returnSecureToken": True},
            timeout=10,
        )
        response.raise_for_status()
        data = response.json()
        return AuthUser(data["localId"], email, data["idToken"], data["refreshToken"])

    def researcher(self, claim=True) -> AuthUser:
        """A new user with the `researcher` custom claim, signed in again so its token carries it."""
        user = self.new_user()
        assert user.email is not None, "new_user makes a user with an email"
        self.set_claims(user.uid, {"researcher": claim})
        return self.sign_in(user.email)

    def set_claims(self, uid: str, claims: dict) -> None:
        """The Admin API call behind firebase-admin's set_custom_user_claims."""
        response = requests.post(
            f"{self.base}/identitytoolkit.googleapis.com/v1/projects/{self.project}/accounts:update",
            json={"localId": uid, "customAttributes": json.dumps(claims)},
            headers={"Authorization": "Bearer owner"},
            timeout=10,
        )
        response.raise_for_status()

    def revoke_tokens(self, uid: str, valid_since: int) -> None:
        """The Admin API call behind firebase-admin's revoke_refresh_tokens."""
        response = requests.post(
            f"{self.base}/identitytoolkit.googleapis.com/v1/projects/{self.project}/accounts:update",
            json={"localId": uid, "validSince": str(valid_since)},
            headers={"Authorization": "Bearer owner"},
            timeout=10,
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
        return ".".join([_b64({"alg": "none", "typ": "JWT"}), _b64(claims), ""])


def _b64(value: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


FINALIZED = "google.cloud.storage.object.v1.finalized"


class StorageEvents:
    """on_upload_finalized over HTTP, sent CloudEvents in binary content mode."""

    def __init__(self, url: str):
        self.url = url

    def headers(
        self, item: dict, *, event_id: str | None = None, time: str | None = None, event_type: str = FINALIZED
    ) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            "ce-specversion": "1.0",
            # A redelivery keeps its event id, as with Eventarc.
            "ce-id": event_id
            or hashlib.sha256(f"{item.get('name')}#{item.get('generation')}".encode()).hexdigest()[:16],
            "ce-source": f"//storage.googleapis.com/projects/_/buckets/{item.get('bucket')}",
            "ce-type": event_type,
            "ce-subject": f"objects/{item.get('name')}",
        }
        time = time or item.get("timeCreated")
        if time:
            headers["ce-time"] = time
        return headers

    def deliver(
        self, item: dict, *, body: bytes | None = None, content_type: str | None = None, **attributes
    ) -> requests.Response:
        """POST the finalized event of this object (StorageObjectData `item`)."""
        headers = self.headers(item, **attributes)
        if content_type:
            headers["Content-Type"] = content_type
        data = json.dumps(item).encode() if body is None else body
        return requests.post(self.url, data=data, headers=headers, timeout=60)
