"""App Check (SPEC §12) through firebase-admin's real verification, served over HTTP.

There is no internet here, so the one Google endpoint App Check needs, its public keys
(https://firebaseappcheck.googleapis.com/v1/jwks), is a local HTTP server on a free port
(devtools/google_endpoints.py, shared with the ID token tests)
serving the JWK set of a key made for this test, and tokens are signed with that key the
way the App Check service signs them: RS256, `kid` and `typ: JWT` in the header, `iss`
https://firebaseappcheck.googleapis.com/<project number>, `aud` [projects/<number>,
projects/<id>], `sub` the web app's id. The functions are told where the keys are by the
test-only setting APP_CHECK_JWKS_URL (shared.core.config); everything else is as deployed:
the functions under gunicorn (devtools.stack.FunctionsServer), one server per APP_CHECK
mode, firebase-admin's app_check.verify_token, and Application Default Credentials from a
service-account file of a local key (firebase-admin 7.7 loads them when its App Check
service is made; nothing is sent with them, as no token is consumed).

Each refusal is checked for what the client sees (the SPEC's error shape, the header
named) and for what it did not do: the whole database is unchanged (snapshot).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from devtools.google_endpoints import GoogleEndpoints, service_account_file
from devtools.ports import free_port
from devtools.stack import PROJECT, ROOT, FunctionsServer
from functions import FUNCTIONS
from shared.web.app_check import HEADER
from tests.conftest import ALLOWED_ORIGIN
from tests.contract.test_openapi import conforms
from tests.security.conftest import snapshot
from tests.support import Api, assert_error, new_guest_key, rows

PROJECT_NUMBER = "123456789012"
APP_ID = f"1:{PROJECT_NUMBER}:web:0123456789abcdef"
KID = "app-check-key-1"
SIGNING_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)

# The rows of functions.FUNCTIONS that check App Check, and the researchers' reading functions.
APP_CHECK_FUNCTIONS = tuple(f.name for f in FUNCTIONS if f.app_check)
RESEARCH_FUNCTIONS = tuple(f.name for f in FUNCTIONS if f.callers == "researchers" and f.method == "GET")

# Each visitor-facing function, as a request that would pass every other check.
METHODS = {
    "create_session": "POST",
    "submit_response": "POST",
    "complete_session": "POST",
    "get_visitor": "GET",
    "register": "POST",
    "create_claim_code": "POST",
    "create_upload_ticket": "POST",
    "delete_my_data": "POST",
    "export_my_data": "GET",
}


def app_check_token(
    key: rsa.RSAPrivateKey = SIGNING_KEY, kid: str = KID, headers: dict | None = None, **overrides
) -> str:
    """An App Check token as the App Check service makes it, with chosen claims."""
    now = int(time.time())
    claims = {
        "iss": f"https://firebaseappcheck.googleapis.com/{PROJECT_NUMBER}",
        "aud": [f"projects/{PROJECT_NUMBER}", f"projects/{PROJECT}"],
        "sub": APP_ID,
        "iat": now,
        "exp": now + 3600,
    }
    claims.update(overrides)
    claims = {name: value for name, value in claims.items() if value is not None}  # None: leave it out
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid, "typ": "JWT", **(headers or {})})


def jwk_of(key: rsa.RSAPrivateKey, kid: str) -> dict:
    return {
        **jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True),
        "kid": kid,
        "alg": "RS256",
        "use": "sig",
    }


@pytest.fixture(scope="module")
def credentials_file(tmp_path_factory) -> str:
    """Application Default Credentials: a service account of a local key (never sent anywhere)."""
    return service_account_file(
        tmp_path_factory.mktemp("credentials") / "service-account.json", "http://127.0.0.1:9/token"
    )


@pytest.fixture(scope="module")
def keys():
    with GoogleEndpoints(jwks=[jwk_of(SIGNING_KEY, KID)]) as endpoints:
        yield endpoints


@pytest.fixture(scope="module")
def serve(stack, credentials_file, tmp_path_factory):
    """serve(mode, keys_url): every function under gunicorn with APP_CHECK=mode, stopped after the module."""
    started: list[FunctionsServer] = []

    def start(mode: str, keys_url: str) -> FunctionsServer:
        env = {
            **stack.env(),
            "APP_CHECK": mode,
            "APP_CHECK_JWKS_URL": keys_url,
            "GOOGLE_APPLICATION_CREDENTIALS": credentials_file,
        }
        log = tmp_path_factory.mktemp(f"app-check-{mode}") / "functions.log"
        server = FunctionsServer(free_port(), env, log).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def enforcing_server(serve, keys):
    return serve("enforce", keys.jwks_url)


@pytest.fixture(scope="module")
def monitoring_server(serve, keys):
    return serve("monitor", keys.jwks_url)


@pytest.fixture(scope="module")
def off_server(serve, keys):
    return serve("off", keys.jwks_url)


@pytest.fixture
def enforcing(enforcing_server, db) -> Api:
    return Api(enforcing_server.url)


@pytest.fixture
def monitoring(monitoring_server, db) -> Api:
    return Api(monitoring_server.url)


@pytest.fixture
def off(off_server, db) -> Api:
    return Api(off_server.url)


def with_app_check(token: str | None) -> dict:
    return {} if token is None else {HEADER: token}


def call(api: Api, function: str, app_check: str | None, **credentials):
    """The function as a visitor calls it, with the App Check header when app_check is given."""
    headers = {**with_app_check(app_check), **credentials.pop("headers", {})}
    if METHODS.get(function, "GET") == "GET":
        return api.get(function, headers=headers, **credentials)
    return api.post(function, {}, headers=headers, **credentials)


def log_lines(server: FunctionsServer) -> list[str]:
    return server.log_path.read_text().splitlines()


def monitor_lines(server: FunctionsServer, since: int) -> list[str]:
    return [line for line in log_lines(server)[since:] if "App Check (monitor)" in line]


# --- enforce -------------------------------------------------------------------


def test_enforce_serves_a_valid_token_for_a_guest_and_for_a_user(enforcing, db, auth_emulator, keys):
    guest = new_guest_key()
    response = enforcing.post("create_session", {}, guest=guest, headers=with_app_check(app_check_token()))
    assert response.status_code == 201, response.text
    assert rows(db, "SELECT count(*) FROM sessions")[0][0] == 1
    assert keys.jwks_requests >= 1  # the signature was checked against the served key set

    user = auth_emulator.new_user()
    response = enforcing.post("create_session", {}, token=user.id_token, headers=with_app_check(app_check_token()))
    assert response.status_code == 201 and response.json()["userId"] == user.uid


def refused_kinds() -> dict:
    now = int(time.time())
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return {
        "missing": lambda: None,
        "empty": lambda: "",
        "expired": lambda: app_check_token(iat=now - 7200, exp=now - 3600),
        "another project's audience": lambda: app_check_token(
            aud=["projects/999999999999", "projects/someone-elses-project"]
        ),
        "audience a string": lambda: app_check_token(aud=f"projects/{PROJECT}"),
        "another issuer": lambda: app_check_token(iss=f"https://securetoken.google.com/{PROJECT}"),
        "forged (another key, same kid)": lambda: app_check_token(key=other_key),
        "unknown key id": lambda: app_check_token(key=other_key, kid="no-such-key"),
        "issued in the future": lambda: app_check_token(iat=now + 600, exp=now + 4200),
        "no subject": lambda: app_check_token(sub=None),
        "unsigned (alg none)": lambda: jwt.encode(
            {
                "iss": f"https://firebaseappcheck.googleapis.com/{PROJECT_NUMBER}",
                "aud": [f"projects/{PROJECT}"],
                "sub": APP_ID,
                "exp": now + 3600,
            },
            None,
            algorithm="none",
            headers={"kid": KID},
        ),
        "an ID token's shape": lambda: "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
        "garbage": lambda: "not-a-token",
    }


@pytest.mark.parametrize("kind", list(refused_kinds()))
def test_enforce_refuses_a_missing_or_invalid_token_naming_the_header(enforcing, world, db, kind):
    token = refused_kinds()[kind]()
    before = snapshot(db)

    # A valid guest key of a guest with a session: refused all the same.
    response = enforcing.post(
        "create_session", {"experimentId": "sec"}, guest=world.guest_key, headers=with_app_check(token)
    )

    error = assert_error(response, 401, "unauthenticated")
    conforms(response, 401, "unauthenticated")  # as openapi.yaml says
    assert HEADER in error["message"]
    if kind == "expired":
        assert "expired" in error["message"]
    if token:
        assert token not in response.text
    assert snapshot(db) == before


@pytest.mark.parametrize("function", APP_CHECK_FUNCTIONS)
def test_enforce_applies_to_every_visitor_facing_function_before_anything_else(
    enforcing, world, db, auth_emulator, function
):
    assert set(METHODS) == set(APP_CHECK_FUNCTIONS)
    before = snapshot(db)
    credentials = {"token": world.user.id_token} if function == "register" else {"guest": world.guest_key}
    # The body (submit_response's {} would be 400) is not even read.
    response = call(enforcing, function, None, **credentials)
    error = assert_error(response, 401, "unauthenticated")
    conforms(response, 401, "unauthenticated")
    assert HEADER in error["message"]
    assert snapshot(db) == before

    served = call(enforcing, function, app_check_token(), **credentials)
    assert served.status_code != 401, served.text


@pytest.mark.parametrize("function", RESEARCH_FUNCTIONS)
def test_enforce_leaves_the_researchers_functions_to_their_id_tokens(enforcing, auth_emulator, function):
    researcher = auth_emulator.researcher()
    response = enforcing.get(function, token=researcher.id_token)
    assert response.status_code == 200, response.text
    error = assert_error(enforcing.get(function), 401, "unauthenticated")
    assert HEADER not in error["message"]


def test_the_keys_out_of_reach_answer_503_not_401_and_a_retry_succeeds(serve, db, world):
    with GoogleEndpoints(jwks=[jwk_of(SIGNING_KEY, KID)]) as flaky:
        flaky.failing = True
        api = Api(serve("enforce", flaky.jwks_url).url)
        before = snapshot(db)
        response = api.post("create_session", {}, guest=world.guest_key, headers=with_app_check(app_check_token()))
        assert_error(response, 503, "unavailable")
        conforms(response, 503, "unavailable")
        assert int(response.headers["Retry-After"]) >= 1
        assert snapshot(db) == before

        flaky.failing = False  # the keys are back: the same kind of request is served
        response = api.post("create_session", {}, guest=world.guest_key, headers=with_app_check(app_check_token()))
        assert response.status_code == 201, response.text


def test_no_key_server_at_all_answers_503(serve, db, world):
    api = Api(serve("enforce", f"http://127.0.0.1:{free_port()}/jwks").url)
    before = snapshot(db)
    response = api.get("get_visitor", guest=world.guest_key, headers=with_app_check(app_check_token()))
    assert_error(response, 503, "unavailable")
    assert snapshot(db) == before


# --- monitor -------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["missing", "garbage", "expired", "forged (another key, same kid)"])
def test_monitor_serves_and_logs_one_line_without_the_token(monitoring, monitoring_server, db, kind):
    token = refused_kinds()[kind]()
    since = len(log_lines(monitoring_server))

    response = monitoring.post("create_session", {}, guest=new_guest_key(), headers=with_app_check(token))

    assert response.status_code == 201, response.text
    assert rows(db, "SELECT count(*) FROM sessions")[0][0] == 1
    (line,) = monitor_lines(monitoring_server, since)
    assert "would have been refused" in json.loads(line)["message"]
    if token:
        assert token not in "\n".join(log_lines(monitoring_server)[since:])


def test_monitor_logs_nothing_for_a_valid_token(monitoring, monitoring_server):
    since = len(log_lines(monitoring_server))
    response = monitoring.post("create_session", {}, guest=new_guest_key(), headers=with_app_check(app_check_token()))
    assert response.status_code == 201, response.text
    assert monitor_lines(monitoring_server, since) == []


def test_monitor_serves_when_the_keys_are_out_of_reach(serve, db):
    server = serve("monitor", f"http://127.0.0.1:{free_port()}/jwks")
    since = len(log_lines(server))
    response = Api(server.url).post(
        "create_session", {}, guest=new_guest_key(), headers=with_app_check(app_check_token())
    )
    assert response.status_code == 201, response.text
    assert len(monitor_lines(server, since)) == 1


# --- off -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "token", [None, "garbage", "x" * 4000, app_check_token(key=rsa.generate_private_key(65537, 2048))]
)
def test_off_ignores_the_header_and_verifies_nothing(off, off_server, keys, db, token):
    fetched = keys.jwks_requests
    since = len(log_lines(off_server))
    response = off.post("create_session", {}, guest=new_guest_key(), headers=with_app_check(token))
    assert response.status_code == 201, response.text
    assert keys.jwks_requests == fetched  # no verification call
    assert not any("App Check" in line for line in log_lines(off_server)[since:])


# --- CORS ----------------------------------------------------------------------


def test_a_browser_may_send_the_header(api):
    response = api.http.options(
        api.url("create_session"),
        headers={
            "Origin": ALLOWED_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-guest-key,x-firebase-appcheck",
        },
        timeout=10,
    )
    assert response.status_code == 204
    allowed = [h.strip().lower() for h in response.headers["Access-Control-Allow-Headers"].split(",")]
    assert "x-firebase-appcheck" in allowed


# --- The pages' client (the client package's Api, built by make client into client/dist/) -------

NODE_CLIENT = """
import { Api } from "./client/dist/index.js";
const { url, idToken, appCheckToken } = JSON.parse(process.env.CLIENT_TEST);
const api = new Api(url, { getIdToken: async () => idToken,
                           getAppCheckToken: appCheckToken ? async () => appCheckToken : null });
try {
  const session = await api.call("create_session", {});
  console.log(JSON.stringify({ visitorNumber: session.visitorNumber }));
} catch (error) {
  console.log(JSON.stringify({ code: error.code, message: error.message }));
}
"""


@pytest.mark.parametrize("with_token", [True, False])
def test_the_pages_client_sends_the_token_it_is_given(enforcing, enforcing_server, auth_emulator, db, with_token):
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed")
    user = auth_emulator.new_user()
    settings = {
        "url": enforcing_server.url,
        "idToken": user.id_token,
        "appCheckToken": app_check_token() if with_token else None,
    }
    result = subprocess.run(
        [node, "--input-type=module", "-e", NODE_CLIENT],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "", "CLIENT_TEST": json.dumps(settings)},
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    if with_token:
        assert answer == {"visitorNumber": 1}
    else:
        assert answer["code"] == "unauthenticated" and HEADER in answer["message"]
