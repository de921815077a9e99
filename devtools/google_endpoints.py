"""Google's token endpoints (certificates, App Check keys, OAuth, the Auth API passed on to the
emulator) on one local server, so that firebase-admin verifies tokens as in production with no
internet: what tests/security and bench/registered.py share (docs/testing.md)."""

from __future__ import annotations

import datetime
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from google.auth import crypt, jwt

from devtools.ports import free_port
from devtools.stack import PROJECT

IDENTITY_TOOLKIT = "/identitytoolkit.googleapis.com/v1"


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def certificate(key: rsa.RSAPrivateKey) -> str:
    """A self-signed certificate of the key, as Google publishes securetoken's keys."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "securetoken.system.gserviceaccount.com")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


SIGNING_KEY = new_key()
KID = "test-key-1"


def signed_token(uid: str, key: rsa.RSAPrivateKey = SIGNING_KEY, kid: str = KID, **overrides) -> str:
    """An ID token as Firebase Auth signs it (RS256, securetoken's issuer), with chosen claims."""
    now = int(time.time())
    claims = {
        "iss": f"https://securetoken.google.com/{PROJECT}",
        "aud": PROJECT,
        "auth_time": now,
        "user_id": uid,
        "sub": uid,
        "iat": now,
        "exp": now + 3600,
        "email": f"{uid}@example.com",
        "firebase": {"identities": {}, "sign_in_provider": "password"},
    }
    claims.update(overrides)
    signer = crypt.RSASigner.from_string(pem(key), key_id=kid)
    return jwt.encode(signer, claims).decode()


def service_account_file(path: Path, token_uri: str) -> str:
    """Application Default Credentials: a service account of a local key whose token_uri is
    `token_uri` (Google's OAuth endpoint is out of reach)."""
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": PROJECT,
                "private_key_id": "admin-key",
                "private_key": pem(new_key()),
                "client_email": f"functions@{PROJECT}.iam.gserviceaccount.com",
                "client_id": "1",
                "token_uri": token_uri,
            }
        )
    )
    return str(path)


def point_firebase_admin_at(url: str, setattr=setattr) -> None:
    """firebase-admin, in this process, reads securetoken's certificates and calls the Auth API
    at `url` (a GoogleEndpoints'), through the constants it reads them from."""
    from firebase_admin import _token_gen, _user_mgt

    setattr(_token_gen, "ID_TOKEN_CERT_URI", f"{url}/certs")
    setattr(_user_mgt.UserManager, "ID_TOOLKIT_URL", f"{url}{IDENTITY_TOOLKIT}")


class GoogleEndpoints:
    """The local server (see the module's docstring), on a free port, started on creation.
    `auth_emulator`: the Auth emulator's host:port that the Auth API is passed on to.
    `failing`: /jwks answers 503 (App Check's keys out of reach)."""

    def __init__(
        self,
        certificates: dict[str, str] | None = None,
        jwks: list[dict] | None = None,
        auth_emulator: str | None = None,
    ):
        self.certificates = certificates if certificates is not None else {KID: certificate(SIGNING_KEY)}
        self.jwks = jwks or []
        self.auth_emulator = auth_emulator
        self.failing = False
        self.cert_requests = 0
        self.jwks_requests = 0
        self.looked_up: list[str] = []  # the uid of every accounts:lookup, in order
        self._lock = threading.Lock()
        self._upstream = requests.Session()
        endpoints = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path == "/certs":
                    endpoints._count("cert_requests")
                    self._answer(200, endpoints.certificates, {"Cache-Control": "public, max-age=3600"})
                elif self.path == "/jwks":
                    endpoints._count("jwks_requests")
                    if endpoints.failing:
                        self.send_error(503)
                    else:
                        self._answer(200, {"keys": endpoints.jwks})
                else:
                    self.send_error(404)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path == "/token":
                    # The Auth emulator accepts "owner" as an admin's access token.
                    self._answer(200, {"access_token": "owner", "expires_in": 3600, "token_type": "Bearer"})
                elif self.path.startswith(IDENTITY_TOOLKIT) and endpoints.auth_emulator:
                    if self.path.endswith("/accounts:lookup"):
                        with endpoints._lock:
                            endpoints.looked_up += json.loads(body).get("localId", [])
                    upstream = endpoints._upstream.post(
                        f"http://{endpoints.auth_emulator}{self.path}",
                        data=body,
                        timeout=30,
                        headers={
                            "Content-Type": "application/json",
                            "Authorization": self.headers.get("Authorization", ""),
                        },
                    )
                    self._answer(upstream.status_code, upstream.content)
                else:
                    self.send_error(404)

            def _answer(self, status: int, body, headers=None):
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _count(self, name: str) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + 1)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    @property
    def jwks_url(self) -> str:
        return f"{self.url}/jwks"

    @property
    def lookups(self) -> int:
        """Auth API accounts:lookup calls so far: what production would send to Google."""
        with self._lock:
            return len(self.looked_up)

    def point_firebase_admin_here(self, setattr=setattr) -> None:
        """Make firebase-admin, in this process, read certificates and call the Auth API here
        (pass monkeypatch.setattr to undo it after a test)."""
        point_firebase_admin_at(self.url, setattr)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._upstream.close()

    def __enter__(self) -> GoogleEndpoints:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
