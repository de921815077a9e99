"""ID tokens through firebase-admin's own signature checks, with the Auth emulator OFF.

With FIREBASE_AUTH_EMULATOR_HOST set, firebase-admin verifies no signature at all
(the emulator's tokens are unsigned), so the e2e tests cannot show that a forged
token is refused. Here the variable is unset and firebase-admin does what it does
in production: it fetches the public certificates and checks the RS256 signature,
audience, issuer and expiry, then (check_revoked) looks the user up.

There is no internet here, so two Google endpoints are replaced through the
constants firebase-admin reads them from:
- `_token_gen.ID_TOKEN_CERT_URI` (Google's x509 certificates of securetoken):
  a local HTTP server that serves the certificate of a key made for this test;
- `_user_mgt.UserManager.ID_TOOLKIT_URL` (the Identity Toolkit API of the
  revocation check): the Auth emulator's REST API, which keeps the users and
  their validSince.
The Admin SDK's own credentials are a service-account file of a local key whose
token_uri is the same local server (Google's OAuth endpoint is out of reach too).

Requests go through functions-framework's app for create_session, in this
process, against the stack's PostgreSQL: what the client saw and what was stored.
"""

from __future__ import annotations

import datetime
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from functions_framework import create_app
from google.auth import crypt, jwt

from devtools.ports import free_port
from devtools.stack import PROJECT, ROOT
from tests.support import new_guest_key, rows, scalar

TABLES = ("users", "guests", "sessions", "responses", "visitor_merges")


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def certificate(key: rsa.RSAPrivateKey) -> str:
    """A self-signed certificate of the key, as Google publishes securetoken's keys."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "securetoken.system.gserviceaccount.com")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


class GoogleEndpoints:
    """A local HTTP server for the two Google endpoints out of reach: the token-signing
    certificates (GET /certs) and the OAuth token endpoint (POST /token)."""

    def __init__(self, certificates: dict[str, str]):
        self.certificates = certificates
        self.cert_requests = 0
        endpoints = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path != "/certs":
                    self.send_error(404)
                    return
                endpoints.cert_requests += 1
                self._json(endpoints.certificates, {"Cache-Control": "public, max-age=3600"})

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                # The Auth emulator accepts "owner" as an admin's access token.
                self._json({"access_token": "owner", "expires_in": 3600, "token_type": "Bearer"})

            def _json(self, body, headers=None):
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def __enter__(self) -> "GoogleEndpoints":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


SIGNING_KEY = new_key()
KID = "test-key-1"


@pytest.fixture
def google():
    with GoogleEndpoints({KID: certificate(SIGNING_KEY)}) as endpoints:
        yield endpoints


@pytest.fixture
def production_auth(stack, db, google, monkeypatch, tmp_path):
    """The functions' settings without FIREBASE_AUTH_EMULATOR_HOST; firebase-admin pointed at
    the local certificate server and, for the revocation check, the Auth emulator."""
    from firebase_admin import _token_gen, _user_mgt

    from shared import auth

    admin_key = new_key()
    service_account = tmp_path / "service-account.json"
    service_account.write_text(json.dumps({
        "type": "service_account", "project_id": PROJECT, "private_key_id": "admin-key",
        "private_key": pem(admin_key), "client_email": f"functions@{PROJECT}.iam.gserviceaccount.com",
        "client_id": "1", "token_uri": f"{google.url}/token",
    }))
    env = stack.env()
    for name in ("DATABASE_URL", "GOOGLE_CLOUD_PROJECT"):
        monkeypatch.setenv(name, env[name])
    monkeypatch.delenv("FIREBASE_AUTH_EMULATOR_HOST", raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(service_account))
    monkeypatch.setattr(_token_gen, "ID_TOKEN_CERT_URI", f"{google.url}/certs")
    monkeypatch.setattr(_user_mgt.UserManager, "ID_TOOLKIT_URL",
                        f"http://{stack.auth.host}/identitytoolkit.googleapis.com/v1")
    auth.reset_firebase_app()  # the next request makes the app, and its auth client, with these settings
    yield
    auth.reset_firebase_app()


@pytest.fixture
def client(production_auth):
    return create_app("create_session", str(ROOT / "main.py")).test_client()


def signed_token(uid: str, key: rsa.RSAPrivateKey = SIGNING_KEY, kid: str = KID, **overrides) -> str:
    now = int(time.time())
    claims = {
        "iss": f"https://securetoken.google.com/{PROJECT}", "aud": PROJECT, "auth_time": now,
        "user_id": uid, "sub": uid, "iat": now, "exp": now + 3600, "email": f"{uid}@example.com",
        "firebase": {"identities": {}, "sign_in_provider": "password"},
    }
    claims.update(overrides)
    signer = crypt.RSASigner.from_string(pem(key), key_id=kid)
    return jwt.encode(signer, claims).decode()


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
    claims = {"iss": f"https://securetoken.google.com/{PROJECT}", "aud": PROJECT, "sub": victim.uid,
              "user_id": victim.uid, "iat": now, "exp": now + 3600, "auth_time": now}
    payload = jwt._helpers.unpadded_urlsafe_b64encode(json.dumps(claims).encode()).decode()
    assert_refused(client, db, f"{header}.{payload}.{signature}")


def test_an_unsigned_token_like_the_emulators_is_refused(client, db, auth_emulator):
    user = auth_emulator.new_user()
    assert_refused(client, db, auth_emulator.crafted_token(user.uid))


def test_a_token_with_an_unknown_key_id_is_refused(client, db, auth_emulator):
    user = auth_emulator.new_user()
    assert_refused(client, db, signed_token(user.uid, kid="no-such-key"))


@pytest.mark.parametrize("claims", [
    {"aud": "someone-elses-project"},
    {"iss": "https://securetoken.google.com/someone-elses-project"},
    {"aud": "someone-elses-project", "iss": "https://securetoken.google.com/someone-elses-project"},
    {"iss": "https://accounts.google.com"},
    {"sub": ""},
])
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
    assert post(client, token).status_code == 201
    # Tokens issued before validSince are revoked (a second ahead: validSince has whole seconds).
    auth_emulator.revoke_tokens(user.uid, valid_since=int(time.time()) + 1)
    error = assert_refused(client, db, token)
    assert "revoked" in error["message"]


def test_a_signed_token_of_a_deleted_or_unknown_user_is_refused(client, db):
    assert_refused(client, db, signed_token(f"never-signed-up-{uuid.uuid4().hex[:8]}"))


def test_certificates_out_of_reach_answer_503_not_401(client, db, auth_emulator, monkeypatch):
    from firebase_admin import _token_gen

    from shared import auth

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
    return client.post("/", json={}, headers={"Authorization": f"Bearer {signed_token(user.uid, email=user.email)}",
                                              "X-Anonymous-Token": anonymous})


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
        "another key": lambda: signed_token(anonymous.uid, key=new_key(), email=None,
                                            firebase={"identities": {}, "sign_in_provider": "anonymous"}),
        "unknown key id": lambda: signed_token(anonymous.uid, kid="no-such-key", email=None,
                                               firebase={"identities": {}, "sign_in_provider": "anonymous"}),
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
