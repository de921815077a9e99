"""Every error a client can cause: SPEC's shape and status, and nothing stored."""

import time
import uuid

import pytest
import requests

from tests.conftest import ALLOWED_ORIGIN
from tests.support import assert_error, new_guest_key, scalar


def assert_nothing_stored(db):
    assert scalar(db, "SELECT count(*) FROM guests") == 0
    assert scalar(db, "SELECT count(*) FROM users") == 0
    assert scalar(db, "SELECT count(*) FROM sessions") == 0


def post_raw(api, data: bytes, content_type: str | None = "application/json", **headers):
    if content_type:
        headers["Content-Type"] = content_type
    headers.setdefault("X-Guest-Key", new_guest_key())
    return requests.post(api.url("create_session"), data=data, headers=headers, timeout=30, allow_redirects=False)


def test_no_credentials_says_which_header_to_send(api, db):
    error = assert_error(api.post("create_session", {}), 401, "unauthenticated")
    assert "Authorization: Bearer" in error["message"] and "X-Guest-Key" in error["message"]
    assert_error(api.get("get_visitor"), 401, "unauthenticated")
    assert_nothing_stored(db)


@pytest.mark.parametrize(
    "key", ["short", "x" * 31, "y" * 129, "has space" + "a" * 30, "ünïcode" + "a" * 30, "semi;colon" + "a" * 30]
)
def test_malformed_guest_key(api, db, key):
    try:
        response = api.post("create_session", {}, guest=key)
    except UnicodeEncodeError:
        pytest.skip("requests refuses non-latin-1 header values before sending")  # pragma: no cover
    assert_error(response, 400, "invalid_argument")
    assert_nothing_stored(db)


@pytest.mark.parametrize("header", ["Bearer not-a-jwt", "Bearer a.b.c", "Basic dXNlcjpwYXNz", "Bearer "])
def test_garbage_authorization_is_unauthenticated_never_a_guest(api, db, header):
    # Even beside a valid guest key, a bad token is refused, not downgraded.
    response = api.post("create_session", {}, guest=new_guest_key(), headers={"Authorization": header})
    assert_error(response, 401, "unauthenticated")
    assert_nothing_stored(db)


def test_expired_token(api, db, auth_emulator):
    user = auth_emulator.new_user()
    expired = auth_emulator.crafted_token(user.uid, iat=int(time.time()) - 7200, exp=int(time.time()) - 3600)
    error = assert_error(api.post("create_session", {}, token=expired), 401, "unauthenticated")
    assert "expired" in error["message"]
    assert_nothing_stored(db)


def test_token_for_another_project(api, db, auth_emulator):
    user = auth_emulator.new_user()
    forged = auth_emulator.crafted_token(
        user.uid, aud="someone-elses-project", iss="https://securetoken.google.com/someone-elses-project"
    )
    assert_error(api.post("create_session", {}, token=forged), 401, "unauthenticated")
    assert_nothing_stored(db)


def test_token_of_a_user_that_does_not_exist(api, db, auth_emulator):
    forged = auth_emulator.crafted_token("no-such-user-" + new_guest_key()[:10])
    assert_error(api.post("create_session", {}, token=forged), 401, "unauthenticated")
    assert_nothing_stored(db)


def test_revoked_token(api, db, auth_emulator):
    user = auth_emulator.new_user()
    # What firebase-admin's revoke_refresh_tokens does: tokens issued before
    # validSince stop being valid (a second ahead, as validSince has whole seconds).
    # (A revocation after the functions read the user's record: tests/security/test_revocation_window.py.)
    auth_emulator.revoke_tokens(user.uid, valid_since=int(time.time()) + 1)
    error = assert_error(api.post("create_session", {}, token=user.id_token), 401, "unauthenticated")
    assert "revoked" in error["message"]
    assert scalar(db, "SELECT count(*) FROM sessions") == 0


@pytest.mark.parametrize(
    "body, field",
    [
        ({"sessionId": "not-a-uuid"}, "sessionId"),
        ({"sessionId": 12}, "sessionId"),
        ({"experimentId": ""}, "experimentId"),
        ({"experimentId": "has space"}, "experimentId"),
        ({"experimentId": "x" * 129}, "experimentId"),
        ({"experimentId": 7}, "experimentId"),
        ({"metadata": [1, 2]}, "metadata"),
        ({"metadata": "text"}, "metadata"),
        ({"metadata": {"big": "x" * (16 * 1024)}}, "metadata"),
        ({"unknownField": 1}, "unknownField"),
    ],
)
def test_wrong_types_and_values(api, db, body, field):
    error = assert_error(api.post("create_session", body, guest=new_guest_key()), 400, "invalid_argument")
    assert field in error["message"]
    assert_nothing_stored(db)


@pytest.mark.parametrize(
    "data",
    [
        b"{",
        b"{'single': 1}",
        b"[1, 2",
        b"\xff\xfe",
        b'{"a": NaN}',
        b"[" * 100 + b"]" * 100,
        b'{"metadata": {"k": "\\u0000"}}',
        b'{"metadata": {"k": "\\ud800"}}',
    ],
)
def test_bad_json(api, db, data):
    assert_error(post_raw(api, data), 400, "invalid_json")
    assert_nothing_stored(db)


@pytest.mark.parametrize("data", [b"[]", b"1", b'"text"', b"null", b'{"metadata": {"x": 1e999}}'])
def test_body_that_is_not_an_object(api, db, data):
    assert_error(post_raw(api, data), 400, "invalid_argument")
    assert_nothing_stored(db)


def test_wrong_content_type(api, db):
    assert_error(post_raw(api, b'{"experimentId": "a"}', "text/plain"), 415, "unsupported_media_type")
    assert_error(post_raw(api, b"experimentId=a", "application/x-www-form-urlencoded"), 415, "unsupported_media_type")
    assert_error(
        post_raw(api, b'{"experimentId": "a"}', "application/json; charset=latin-1"), 415, "unsupported_media_type"
    )
    assert_nothing_stored(db)


def test_oversize_body_is_refused_before_parsing(api, db):
    # Not even valid JSON: the size alone decides.
    assert_error(post_raw(api, b"{" * (256 * 1024 + 1)), 413, "payload_too_large")

    def chunks():  # no Content-Length: the limit still holds
        for _ in range(300):
            yield b" " * 1024

    assert_error(post_raw(api, chunks()), 413, "payload_too_large")
    assert_nothing_stored(db)


def test_empty_body_is_an_empty_request(api, db):
    response = post_raw(api, b"", None)
    assert response.status_code == 201
    assert response.json()["visitorNumber"] == 1


@pytest.mark.parametrize(
    "method, function, allow",
    [
        ("GET", "create_session", "POST, OPTIONS"),
        ("PUT", "create_session", "POST, OPTIONS"),
        ("DELETE", "create_session", "POST, OPTIONS"),
        ("POST", "get_visitor", "GET, OPTIONS"),
    ],
)
def test_wrong_method(api, db, method, function, allow):
    response = requests.request(method, api.url(function), headers={"X-Guest-Key": new_guest_key()}, timeout=30)
    assert_error(response, 405, "method_not_allowed")
    assert response.headers["Allow"] == allow
    assert_nothing_stored(db)


def test_cors_preflight_from_an_allowed_origin(api, db):
    response = requests.options(
        api.url("create_session"),
        headers={
            "Origin": ALLOWED_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, x-guest-key",
        },
        timeout=30,
    )
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    allowed_headers = {h.strip().lower() for h in response.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type", "x-guest-key", "x-anonymous-token"} <= allowed_headers
    assert int(response.headers["Access-Control-Max-Age"]) > 0

    actual = api.post("create_session", {}, guest=new_guest_key(), headers={"Origin": ALLOWED_ORIGIN})
    assert actual.status_code == 201
    assert actual.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    error = api.post("create_session", {}, headers={"Origin": ALLOWED_ORIGIN})
    assert error.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN  # errors are readable too
    # and so is a 503's Retry-After, for the client package's waits (client/src/outbox.ts)
    assert error.headers["Access-Control-Expose-Headers"] == "Retry-After, Content-Disposition"


def test_cors_preflight_from_another_origin_gets_no_grant(api, db):
    response = requests.options(
        api.url("create_session"),
        headers={
            "Origin": "https://evil.example.com",
            "Access-Control-Request-Method": "POST",
        },
        timeout=30,
    )
    assert "Access-Control-Allow-Origin" not in response.headers
    assert_error(response, 403, "permission_denied")
    actual = api.post("create_session", {}, guest=new_guest_key(), headers={"Origin": "https://evil.example.com"})
    assert "Access-Control-Allow-Origin" not in actual.headers


def test_a_refused_origin_is_logged_once_with_the_setting_to_change(stack, api, db):
    """A study's page on an origin left out of ALLOWED_ORIGINS sees only a network error in the
    browser: the functions' log names the origin and ALLOWED_ORIGINS, once per origin."""
    origin = f"https://study-{uuid.uuid4().hex[:8]}.github.io"
    log_path = stack.functions.log_path
    before = log_path.stat().st_size
    for _ in range(3):
        requests.options(
            api.url("create_session"),
            headers={"Origin": origin, "Access-Control-Request-Method": "POST"},
            timeout=30,
        )
        api.post("create_session", {}, guest=new_guest_key(), headers={"Origin": origin})
    with log_path.open("rb") as log:
        log.seek(before)
        logged = [line for line in log.read().decode().splitlines() if origin in line]
    # once per origin and instance (each gunicorn worker is one)
    assert 1 <= len(logged) <= stack.workers
    assert "ALLOWED_ORIGINS" in logged[0] and '"severity": "WARNING"' in logged[0]


def test_unknown_function_path(api, db):
    response = requests.get(f"{api.base_url}/no_such_function", timeout=30)
    assert_error(response, 404, "not_found")


@pytest.mark.parametrize(
    "headers, data, status, code",
    [
        (
            {"Content-Type": "application/json", "X-Secret-Looking": "Bearer abc.def.ghi"},
            b'{"guestKey": "secret-key"}',
            400,
            "invalid_argument",
        ),
        ({"ce-id": "1", "ce-source": "//storage"}, b"half a cloud event", 415, "unsupported_media_type"),
        (
            {"Content-Type": "application/cloudevents+json"},
            b'{"specversion": "1.0", "marker": "echo-me"}',
            400,
            "invalid_argument",
        ),
    ],
)
def test_a_request_to_the_storage_trigger_that_is_no_cloud_event_is_json_without_an_echo(
    api, db, headers, data, status, code
):
    """functions-framework answers these itself (before on_upload_finalized runs), with an HTML
    page that repeats the request's headers and body; main.py's handler answers SPEC's shape."""
    response = requests.post(api.url("on_upload_finalized"), data=data, headers=headers, timeout=30)
    error = assert_error(response, status, code)
    if status == 400:
        assert "CloudEvent" in error["message"]
    for echoed in (b"secret-key", b"abc.def.ghi", b"half a cloud event", b"echo-me", b"//storage"):
        assert echoed not in response.content
    assert response.headers["Content-Type"] == "application/json"
