"""Who is calling: a registered user (Firebase ID token) or a guest (X-Guest-Key).

A bad token is always 401; it is never quietly treated as a guest. The guest
key is a secret the browser keeps; only its SHA-256 ever leaves this module.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from dataclasses import dataclass
from typing import Any

from shared import config, failures
from shared.errors import InvalidArgument, Unauthenticated
from shared.instance import InstanceCache
from shared.logs import get_logger

log = get_logger("auth")

GUEST_KEY_PATTERN = re.compile(r"[A-Za-z0-9_-]{32,128}")
_CREDENTIALS_HINT = (
    "Send 'Authorization: Bearer <Firebase ID token>' as a signed-in user, "
    "or 'X-Guest-Key: <key>' (32-128 of A-Z a-z 0-9 - _) as a guest."
)


@dataclass(frozen=True)
class User:
    """A Firebase Authentication user, from a verified ID token."""

    uid: str
    email: str | None
    sign_in_provider: str | None
    # The `researcher` custom claim as the token carries it (SPEC §10); what it
    # allows is decided in one place, shared/researchers.py.
    researcher_claim: Any = None

    @property
    def anonymous(self) -> bool:
        return self.sign_in_provider == "anonymous"


@dataclass(frozen=True)
class Guest:
    """A guest, known only by the hash of the key its browser keeps."""

    key_hash: bytes

    def __repr__(self) -> str:  # never print even the hash in full
        return f"Guest({self.key_hash.hex()[:8]}…)"


Caller = User | Guest


def hash_guest_key(key: str) -> bytes:
    # The key is never compared itself: only its SHA-256 is, by PostgreSQL's unique
    # index on guests.key_hash. The timing of that lookup can tell at most how much
    # of a hash matched, which says nothing about the key (so no compare_digest here).
    return hashlib.sha256(key.encode("ascii")).digest()


def guest_from_header(request) -> Guest | None:
    """The guest named by X-Guest-Key, None without the header; 400 for a malformed key."""
    key = request.headers.get("X-Guest-Key")
    if key is None:
        return None
    if not GUEST_KEY_PATTERN.fullmatch(key):
        raise InvalidArgument("X-Guest-Key must be 32 to 128 characters of A-Z a-z 0-9 - _.")
    return Guest(hash_guest_key(key))


def user_from_header(request) -> User | None:
    """The user whose ID token is in Authorization, None without the header; 401 if it is not valid."""
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("Authorization must be 'Bearer <Firebase ID token>'.")
    return verify_id_token(token.strip())


def anonymous_from_header(request) -> User | None:
    """The Firebase anonymous account named by X-Anonymous-Token (SPEC §13), None without
    the header. The token is verified like any ID token (401 if it is not valid); one of
    another provider is 400: the header names an anonymous account to claim, nothing else."""
    header = request.headers.get("X-Anonymous-Token")
    if header is None:
        return None
    token = header.strip()
    if token.lower().startswith("bearer "):
        token = token[len("bearer "):].strip()
    if not token:
        raise Unauthenticated("X-Anonymous-Token must be the ID token of a Firebase anonymous account.")
    user = verify_id_token(token)
    if not user.anonymous:
        raise InvalidArgument(
            "X-Anonymous-Token must be the ID token of an anonymous account (signInAnonymously); "
            "this one is of a signed-in account."
        )
    return user


def identify(request) -> Caller:
    """The caller: the user if a token is sent (even beside a guest key), else the guest."""
    user = user_from_header(request)
    if user is not None:
        return user
    guest = guest_from_header(request)
    if guest is not None:
        return guest
    raise Unauthenticated(f"No credentials. {_CREDENTIALS_HINT}")


def _initialize_app():
    import firebase_admin

    # No credentials argument: on Google Cloud the runtime's service account is
    # used; locally FIREBASE_AUTH_EMULATOR_HOST needs none.
    return firebase_admin.initialize_app(options={"projectId": config.project_id()}, name="visitors")


def _delete_app(app) -> None:
    import firebase_admin

    firebase_admin.delete_app(app)


_app = InstanceCache(_initialize_app, close=_delete_app)


def firebase_app():
    """The Firebase Admin app, initialised on first use for this instance."""
    return _app.get()


_AUTH_UNAVAILABLE = "Could not verify the ID token right now; try again shortly."


def verify_id_token(token: str) -> User:
    from firebase_admin import auth, exceptions

    # firebase-admin checks expiry while verifying the signature; against the Auth
    # emulator it verifies neither, so check it first here and behave the same everywhere.
    if _expired(token):
        raise Unauthenticated("The ID token has expired; get a fresh one from Firebase Auth.")
    try:
        claims = auth.verify_id_token(token, app=firebase_app(), check_revoked=True)
    except auth.ExpiredIdTokenError:
        raise Unauthenticated("The ID token has expired; get a fresh one from Firebase Auth.") from None
    except auth.RevokedIdTokenError:
        raise Unauthenticated("The ID token has been revoked; sign in again.") from None
    except auth.UserDisabledError:
        raise Unauthenticated("This user account is disabled.") from None
    except auth.UserNotFoundError:
        raise Unauthenticated("The ID token's user no longer exists; sign in again.") from None
    except (auth.InvalidIdTokenError, ValueError) as error:
        log.info("refused an ID token: %s", failures.one_line(error))
        raise Unauthenticated("The ID token is not valid.") from None
    except exceptions.FirebaseError as error:
        # Transport and server errors of the Auth API (the revocation check), and
        # CertificateFetchError: the token-signing certificates could not be fetched.
        raise failures.unavailable("Firebase Auth", error, _AUTH_UNAVAILABLE) from None
    return User(
        uid=claims["uid"],
        email=claims.get("email"),
        sign_in_provider=claims.get("firebase", {}).get("sign_in_provider"),
        researcher_claim=claims.get("researcher"),
    )


def _expired(token: str) -> bool:
    """Whether the token's (unverified) exp claim is in the past; False if it cannot be read."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return float(claims["exp"]) <= time.time()
    except (IndexError, KeyError, TypeError, ValueError):
        return False  # malformed: verify_id_token says why


def reset_firebase_app() -> None:
    """Forget the Firebase app (tests that change the environment)."""
    _app.reset()
