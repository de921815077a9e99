"""Who is calling: a registered user (Firebase ID token) or a guest (X-Guest-Key).

A bad token is always 401; it is never quietly treated as a guest. The guest
key is a secret the browser keeps; only its SHA-256 ever leaves this module.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shared.core import config, failures
from shared.core.errors import InvalidArgument, Unauthenticated
from shared.core.instance import InstanceCache
from shared.core.logs import get_logger
from shared.web import refusals

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
    # The `researcher` custom claim as the token carries it (docs/researchers.md); what it
    # allows is decided in one place, shared/research/researchers.py.
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
        refusals.log_refused(log, "a guest key", key, "GUEST_KEY_PATTERN")
        raise InvalidArgument("X-Guest-Key must be 32 to 128 characters of A-Z a-z 0-9 - _.")
    return Guest(hash_guest_key(key))


def user_from_header(request, fresh: bool = False) -> User | None:
    """The user whose ID token is in Authorization, None without the header; 401 if it is not valid.
    fresh: check revocation against the user's record as it is now (verify_id_token)."""
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("Authorization must be 'Bearer <Firebase ID token>'.")
    return verify_id_token(token.strip(), fresh=fresh)


def anonymous_from_header(request) -> User | None:
    """The Firebase anonymous account named by X-Anonymous-Token (docs/api.md), None without
    the header. The token is verified like any ID token (401 if it is not valid); one of
    another provider is 400: the header names an anonymous account to claim, nothing else.
    Its revocation is always checked fresh: a claim moves the account's data for good."""
    header = request.headers.get("X-Anonymous-Token")
    if header is None:
        return None
    token = header.strip()
    if token.lower().startswith("bearer "):
        token = token[len("bearer ") :].strip()
    if not token:
        raise Unauthenticated("X-Anonymous-Token must be the ID token of a Firebase anonymous account.")
    user = verify_id_token(token, fresh=True)
    if not user.anonymous:
        raise InvalidArgument(
            "X-Anonymous-Token must be the ID token of an anonymous account (signInAnonymously); "
            "this one is of a signed-in account."
        )
    return user


def identify(request, fresh: bool = False) -> Caller:
    """The caller: the user if a token is sent (even beside a guest key), else the guest.
    fresh: as user_from_header's."""
    user = user_from_header(request, fresh=fresh)
    if user is not None:
        return user
    guest = guest_from_header(request)
    if guest is not None:
        return guest
    raise Unauthenticated(f"No credentials. {_CREDENTIALS_HINT}")


def _initialize_app():
    import firebase_admin

    # Never with FIREBASE_AUTH_EMULATOR_HOST where deployed: it would accept unsigned ID tokens.
    config.refuse_dev_settings_when_deployed()
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


def verify_id_token(token: str, fresh: bool = False) -> User:
    """The user of a Firebase ID token: 401 if it is not valid, expired or revoked, or its user is
    disabled or gone; 503 if Firebase Auth cannot be reached (docs/design/revocation-window.md)."""
    from firebase_admin import auth, exceptions

    max_age = 0 if fresh else config.token_revocation_check_seconds()
    claims = verified_tokens.get(token)  # None once it has expired
    # firebase-admin checks expiry while verifying the signature; against the Auth
    # emulator it verifies neither, so check it first here and behave the same everywhere.
    if claims is None and _expired(token):
        raise Unauthenticated("The ID token has expired; get a fresh one from Firebase Auth.")
    try:
        app = firebase_app()
        if claims is None:
            claims = auth.verify_id_token(token, app=app, check_revoked=False)
            verified_tokens.keep(token, claims)
        _check_not_revoked(claims, app, max_age)
    except auth.ExpiredIdTokenError:
        raise Unauthenticated("The ID token has expired; get a fresh one from Firebase Auth.") from None
    except auth.RevokedIdTokenError:
        raise Unauthenticated("The ID token has been revoked; sign in again.") from None
    except auth.UserDisabledError:
        raise Unauthenticated("This user account is disabled.") from None
    except auth.UserNotFoundError:
        raise Unauthenticated("The ID token's user no longer exists; sign in again.") from None
    except (auth.InvalidIdTokenError, ValueError) as error:
        refusals.log_refused(log, "an ID token", token, error)
        raise Unauthenticated("The ID token is not valid.") from None
    except exceptions.FirebaseError as error:
        # Transport and server errors of the Auth API (the user's record), and
        # CertificateFetchError: the token-signing certificates could not be fetched.
        raise failures.unavailable("Firebase Auth", error, _AUTH_UNAVAILABLE) from None
    return User(
        uid=claims["uid"],
        email=claims.get("email"),
        sign_in_provider=claims.get("firebase", {}).get("sign_in_provider"),
        researcher_claim=claims.get("researcher"),
    )


class VerifiedTokens:
    """ID tokens this instance has verified, and their claims, until they expire: a signed-in
    user sends the same token with every request for up to an hour, and firebase-admin's
    verify_id_token costs about half a millisecond of CPU each time (mostly reading the cached
    certificates through requests), where a signed JWT's signature, audience and issuer cannot
    change. Keyed by the token's SHA-256; expiry is checked on every use (`exp`, as
    firebase-admin would); revocation is not kept here (RevocationCache). At most `size`
    tokens, the least recently used forgotten first; a refused token is never kept."""

    def __init__(self, size: int = 4096, clock: Callable[[], float] = time.time):
        self.size = size
        self.clock = clock
        self._claims: OrderedDict[bytes, dict] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, token: str) -> dict | None:
        key = hashlib.sha256(token.encode()).digest()
        with self._lock:
            claims = self._claims.get(key)
            if claims is None:
                return None
            if claims["exp"] <= self.clock():
                del self._claims[key]
                return None
            self._claims.move_to_end(key)
            return claims

    def keep(self, token: str, claims: dict) -> None:
        with self._lock:
            key = hashlib.sha256(token.encode()).digest()
            self._claims[key] = claims
            self._claims.move_to_end(key)
            while len(self._claims) > self.size:
                self._claims.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._claims.clear()


verified_tokens = VerifiedTokens()


# --- Revocation: firebase-admin's check, on a record read at most TOKEN_REVOCATION_CHECK_SECONDS ago ---
#
# ID tokens are signed JWTs that live an hour; whether one was revoked (revoke_refresh_tokens,
# a password change) or its user disabled is known only to Firebase Auth, so firebase-admin's
# check_revoked=True makes "an extra request to the Firebase Auth backend to check the
# tokensValidAfterTime time" (the Admin SDK's reference for verifyIdToken's checkRevoked,
# https://firebase.google.com/docs/reference/admin/node/firebase-admin.auth.baseauth#baseauthverifyidtoken;
# revocation: https://firebase.google.com/docs/auth/admin/manage-sessions): an accounts:lookup
# per request, a round trip to Google and Auth API quota.
# What is kept here is what that check reads (disabled, tokens_valid_after_timestamp), not
# "this uid passed": every token is tested against it, so a token revoked before the read
# is always refused (a thief's old token stays refused after the owner signs in again);
# only a revocation, disabling or deletion made after the read can go unnoticed, for at most
# TOKEN_REVOCATION_CHECK_SECONDS, on instances that read the record before it.


@dataclass(frozen=True)
class AccountState:
    """What firebase-admin's revocation check reads from a user's record
    (firebase_admin/_auth_client.py, Client._check_jwt_revoked_or_disabled)."""

    disabled: bool
    tokens_valid_after_ms: int  # a token whose iat * 1000 is below this is revoked


class RevocationCache:
    """Per uid, the AccountState last read from Firebase Auth by this instance and when (by
    `clock`, which tests replace). Thread-safe (gunicorn's threads share it); at most `size`
    uids, the least recently used forgotten first; concurrent misses for one uid make one
    lookup. A failed read (user not found, Auth unreachable) is never kept."""

    def __init__(self, size: int = 4096, clock: Callable[[], float] = time.monotonic):
        self.size = size
        self.clock = clock
        self._states: OrderedDict[str, tuple[float, AccountState]] = OrderedDict()
        self._reading: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def get(self, uid: str, max_age: float, read: Callable[[], AccountState]) -> AccountState:
        """uid's state as read less than max_age seconds ago: the kept one, else read() now,
        kept for the next requests. max_age 0 always reads (and does not wait for other reads)."""
        if max_age <= 0:
            return self._read(uid, read)
        while True:
            with self._lock:
                kept = self._states.get(uid)
                if kept is not None and self.clock() - kept[0] < max_age:
                    self._states.move_to_end(uid)
                    return kept[1]
                reading = self._reading.get(uid)
                if reading is None:
                    self._reading[uid] = done = threading.Event()
                    break
            reading.wait()  # another request is reading this uid's record: use it (or read if it failed)
        try:
            return self._read(uid, read)
        finally:
            with self._lock:
                del self._reading[uid]
            done.set()

    def _read(self, uid: str, read: Callable[[], AccountState]) -> AccountState:
        # Stamped with the time the read started: the record may be that old when it arrives.
        started = self.clock()
        state = read()
        with self._lock:
            kept = self._states.get(uid)
            if kept is None or kept[0] <= started:  # never replace a newer read by an older one
                self._states[uid] = (started, state)
            self._states.move_to_end(uid)
            while len(self._states) > self.size:
                self._states.popitem(last=False)
        return state

    def clear(self) -> None:
        with self._lock:
            self._states.clear()


revocations = RevocationCache()


def _check_not_revoked(claims: dict, app, max_age: float) -> None:
    """firebase-admin's check_revoked test, on the user's record read less than max_age seconds
    ago (one accounts:lookup through firebase-admin's get_user when it is not kept): raises its
    UserDisabledError or RevokedIdTokenError, and get_user's UserNotFoundError or FirebaseError."""
    from firebase_admin import auth

    def read() -> AccountState:
        record = auth.get_user(claims["uid"], app=app)
        return AccountState(disabled=record.disabled, tokens_valid_after_ms=record.tokens_valid_after_timestamp)

    state = revocations.get(claims["uid"], max_age, read)
    if state.disabled:
        raise auth.UserDisabledError("The user record is disabled.")
    if claims["iat"] * 1000 < state.tokens_valid_after_ms:
        raise auth.RevokedIdTokenError("The Firebase ID token has been revoked.")


def _expired(token: str) -> bool:
    """Whether the token's (unverified) exp claim is in the past; False if it cannot be read."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return float(claims["exp"]) <= time.time()
    except (IndexError, KeyError, TypeError, ValueError):
        return False  # malformed: verify_id_token says why


def reset_firebase_app() -> None:
    """Forget the Firebase app, and the tokens and users' records checked with it (tests that change
    the environment)."""
    _app.reset()
    verified_tokens.clear()
    revocations.clear()
