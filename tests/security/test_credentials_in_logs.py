"""Refused credentials never reach the functions' log (SPEC §12): a refusal is logged by its
length, shape and the check that refused it, never by the value nor a library's message that
quotes it. Served functions under gunicorn, with App Check monitored and run_maintenance's
OIDC check on, and the log file scanned for any 16 characters of each credential."""

from __future__ import annotations

import base64
import json
import secrets
import time

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from devtools.google_endpoints import GoogleEndpoints, certificate, new_key, service_account_file, signed_token
from devtools.ports import free_port
from devtools.stack import PROJECT, ROOT, FunctionsServer
from shared.web.app_check import HEADER
from tests.support import new_guest_key

SCHEDULER = "visitors-scheduler@demo-visitors.iam.gserviceaccount.com"
KID = "app-check-key-1"
APP_CHECK_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
GOOGLE_KEY = new_key()


@pytest.fixture(scope="module")
def google():
    jwk = {
        **jwt.algorithms.RSAAlgorithm.to_jwk(APP_CHECK_KEY.public_key(), as_dict=True),
        "kid": KID,
        "alg": "RS256",
        "use": "sig",
    }
    with GoogleEndpoints({"google-key-1": certificate(GOOGLE_KEY)}, jwks=[jwk]) as endpoints:
        yield endpoints


@pytest.fixture(scope="module")
def server(stack, google, tmp_path_factory):
    port = free_port()
    workdir = tmp_path_factory.mktemp("credentials-in-logs")
    env = {
        **stack.env(),
        "APP_CHECK": "monitor",
        "APP_CHECK_JWKS_URL": google.jwks_url,
        "GOOGLE_APPLICATION_CREDENTIALS": service_account_file(workdir / "sa.json", "http://127.0.0.1:9/token"),
        "MAINTENANCE_INVOKER": SCHEDULER,
        "MAINTENANCE_AUDIENCE": f"http://127.0.0.1:{port}/run_maintenance",
        "MAINTENANCE_CERTS_URL": f"{google.url}/certs",
        "LOG_LEVEL": "DEBUG",
    }
    server = FunctionsServer(port, env, workdir / "functions.log").start()
    yield server
    server.stop()


def _b64(value: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


def truncated(token: str) -> str:
    """An ID token cut in the middle of its payload: two segments, the first half of the claims."""
    header, payload, _ = token.split(".")
    return f"{header}.{payload[: len(payload) // 2]}"


def wrongly_signed(uid: str) -> str:
    """A JWT signed by a key nobody trusts, for another project (refused even by the Auth emulator,
    which checks no signature)."""
    now = int(time.time())
    claims = {
        "iss": "https://securetoken.google.com/someone-else",
        "aud": "someone-else",
        "sub": uid,
        "user_id": uid,
        "iat": now,
        "exp": now + 3600,
        "email": f"{uid}@example.com",
    }
    return jwt.encode(
        claims,
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
        algorithm="RS256",
        headers={"kid": "unknown"},
    )


def leaks(log: str, credential: str, width: int = 16) -> list[str]:
    return [credential[i : i + width] for i in range(len(credential) - width + 1) if credential[i : i + width] in log]


def test_refused_credentials_of_every_shape_are_logged_without_their_value(server, auth_emulator, db):
    user = auth_emulator.new_user()
    anonymous = auth_emulator.anonymous()
    now = int(time.time())
    credentials = {
        "refresh-token-like": secrets.token_urlsafe(153)[:204],
        "emulator refresh token": user.refresh_token,
        "truncated ID token": truncated(user.id_token),
        "wrongly signed JWT": wrongly_signed(user.uid),
        "unsigned JWT of another project": ".".join(
            [_b64({"alg": "none", "typ": "JWT"}), _b64({"aud": "x", "sub": user.uid, "exp": now + 600}), ""]
        ),
        "truncated anonymous token": truncated(anonymous.id_token),
    }
    url = f"{server.url}/create_session"
    for name, value in credentials.items():
        answer = requests.post(url, json={}, headers={"Authorization": f"Bearer {value}"}, timeout=30)
        assert answer.status_code == 401, (name, answer.text)
    answer = requests.post(
        f"{server.url}/register",
        json={},
        timeout=30,
        headers={
            "Authorization": f"Bearer {user.id_token}",
            "X-Anonymous-Token": credentials["truncated anonymous token"],
        },
    )
    assert answer.status_code == 401, answer.text

    short_key = secrets.token_urlsafe(18)  # 24 characters: 32 are the least
    long_key = secrets.token_urlsafe(120)
    for key in (short_key, long_key, short_key + "!" * 20):
        assert requests.post(url, json={}, headers={"X-Guest-Key": key}, timeout=30).status_code == 400
    credentials.update({"short guest key": short_key, "long guest key": long_key})

    app_checks = {
        "App Check, wrong key": jwt.encode(
            {"sub": "x", "aud": [f"projects/{PROJECT}"], "exp": now + 600},
            rsa.generate_private_key(public_exponent=65537, key_size=2048),
            algorithm="RS256",
            headers={"kid": KID},
        ),
        "App Check, malformed": secrets.token_urlsafe(150),
        "App Check, two segments": truncated(
            jwt.encode({"sub": "x", "exp": now + 600}, APP_CHECK_KEY, algorithm="RS256", headers={"kid": KID})
        ),
    }
    for value in app_checks.values():
        answer = requests.post(url, json={}, headers={HEADER: value, "X-Guest-Key": new_guest_key()}, timeout=30)
        assert answer.status_code == 201, answer.text  # monitored: served, and logged
    credentials.update(app_checks)

    oidc = {"OIDC, malformed": secrets.token_urlsafe(150), "OIDC, truncated ID token": truncated(user.id_token)}
    for value in oidc.values():
        answer = requests.post(
            f"{server.url}/run_maintenance", headers={"Authorization": f"Bearer {value}"}, timeout=30
        )
        assert answer.status_code == 401, answer.text
    credentials.update(oidc)

    log = server.log_path.read_text()
    for name, value in credentials.items():
        assert leaks(log, value) == [], name
    assert user.email not in log and user.uid not in log and anonymous.uid not in log
    # Each refusal is still logged, by its shape and the check that refused it.
    # 6 bearer tokens, the anonymous token, 3 guest keys, 3 App Check tokens, 2 OIDC tokens.
    assert log.count('"message": "refused ') == 6 + 1 + 3 + 3 + 2
    assert '"length": 204, "segments": 1' in log


def test_tokens_refused_by_their_signature_are_logged_without_their_value(production_auth, auth_emulator, lines):
    """With the Auth emulator off, firebase-admin checks signatures: a forged or cut signature is
    refused, and the log line says so by shape only."""
    from functions_framework import create_app

    client = create_app("create_session", str(ROOT / "main.py")).test_client()
    user = auth_emulator.new_user()
    forged = signed_token(user.uid, key=new_key())
    cut = signed_token(user.uid)[:-40]
    for token in (forged, cut, truncated(signed_token(user.uid))):
        answer = client.post("/", json={}, headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 401, answer.get_data(as_text=True)
        logged = "\n".join(f"{record.getMessage()} {getattr(record, 'fields', '')}" for record in lines)
        assert "refused an ID token" in logged
        assert leaks(logged, token) == [] and user.email not in logged and user.uid not in logged
