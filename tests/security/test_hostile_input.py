"""Hostile input in every field of every endpoint and in the headers: each answer is a
4xx in the SPEC's error shape, or the value is stored verbatim (read back and
compared); never a 500. A refused request writes nothing."""

from __future__ import annotations

import json
import uuid

import pytest
import requests

from tests.security.conftest import snapshot
from tests.support import assert_error, new_guest_key, rows, scalar

SQL_INJECTION = [
    "' OR '1'='1",
    "'; DROP TABLE sessions; --",
    '" OR 1=1 --',
    "1); DELETE FROM guests; --",
    "$$; TRUNCATE users; $$",
    "%s %(id)s :session_id ?",
    "\\'; SELECT pg_sleep(10); --",
    "x' UNION SELECT key_hash FROM guests --",
]
UNICODE = [
    "\u202eevil\u202c",  # right-to-left override
    "שלום עולם مرحبا",  # RTL scripts
    "e\u0301" * 40,  # combining accents
    "Z\u0364\u0351\u0313a\u0308\u0347l\u036e",  # zalgo
    "👩\u200d👩\u200d👧\u200d👦 🏳\ufe0f\u200d🌈 😀",  # ZWJ emoji sequences
    "\ufeffBOM \u200bzero-width \u2028\u2029 separators",
    "\uffff\ufffe\U0010ffff noncharacters",
    "\u00a0\u3000\u2007 spaces",
    "𝕳𝖊𝖑𝖑𝖔 𝟘𝟙𝟚",  # astral plane letters and digits
]
STRINGS = SQL_INJECTION + UNICODE

HUGE_NUMBERS = [2**31, 2**63, 2**64 + 1, 10**400, -(10**400), 1.7976931348623157e308, 5e-324, -0.0]
# Raw JSON texts no server-side JSON value can hold: refused with 400.
UNPARSABLE_NUMBERS = ["1e999", "-1e999", "NaN", "Infinity", "1" * 5000]
# Refused: PostgreSQL's JSONB holds neither NUL nor a lone surrogate.
UNSTORABLE_STRINGS = ['"a\\u0000b"', '"\\ud800"', '"\\udfff x"']


def same_json(sent, stored) -> bool:
    """Equal as JSON values; numbers as a JavaScript client reads them (doubles)."""
    if isinstance(sent, bool) or isinstance(stored, bool):
        return sent is stored
    if isinstance(sent, (int, float)) and isinstance(stored, (int, float)):
        return sent == stored if isinstance(sent, int) and isinstance(stored, int) else float(sent) == float(stored)
    if isinstance(sent, dict) and isinstance(stored, dict):
        return sent.keys() == stored.keys() and all(same_json(sent[k], stored[k]) for k in sent)
    if isinstance(sent, list) and isinstance(stored, list):
        return len(sent) == len(stored) and all(same_json(a, b) for a, b in zip(sent, stored))
    return sent == stored


def post_raw(api, function: str, body: str | bytes, **headers) -> requests.Response:
    data = body.encode("utf-8") if isinstance(body, str) else body
    return requests.post(
        api.url(function), data=data, timeout=30, headers={"Content-Type": "application/json", **headers}
    )


def assert_4xx(response: requests.Response) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    assert_error(response, response.status_code, response.json()["error"]["code"])


# --- create_session -------------------------------------------------------------------------


@pytest.mark.parametrize("value", STRINGS)
def test_create_session_ids_refuse_anything_but_their_format(api, db, value):
    key = new_guest_key()
    before = snapshot(db)
    for body in ({"sessionId": value}, {"experimentId": value}, {"sessionId": str(uuid.uuid4()), value: 1}):
        assert_error(api.post("create_session", body, guest=key), 400, "invalid_argument")
    assert snapshot(db) == before


@pytest.mark.parametrize("value", STRINGS)
def test_metadata_keys_and_values_are_stored_verbatim(api, db, value):
    metadata = {value: value, "nested": {value: [value, {value: value}]}, "n": HUGE_NUMBERS}
    response = api.post("create_session", {"metadata": metadata}, guest=new_guest_key())
    assert response.status_code == 201, response.text
    (stored,) = rows(db, "SELECT metadata FROM sessions WHERE id = CAST(:id AS uuid)", id=response.json()["sessionId"])
    assert same_json(metadata, stored.metadata)


def test_metadata_limit_counts_utf8_bytes_not_code_points(api, db):
    emoji = "😀"  # 1 code point, 4 bytes
    wrapper = len(json.dumps({"k": ""}, separators=(",", ":")))
    fits = {"k": emoji * ((16 * 1024 - wrapper) // 4)}
    response = api.post("create_session", {"metadata": fits}, guest=new_guest_key())
    assert response.status_code == 201, response.text
    stored = scalar(db, "SELECT metadata FROM sessions WHERE id = CAST(:id AS uuid)", id=response.json()["sessionId"])
    assert stored == fits
    over = {"k": fits["k"] + emoji}  # 4 bytes more: over 16 KiB, though far under 16 Ki code points
    before = snapshot(db)
    assert_error(api.post("create_session", {"metadata": over}, guest=new_guest_key()), 400, "invalid_argument")
    assert snapshot(db) == before


# --- submit_response ------------------------------------------------------------------------


@pytest.fixture
def own_session(api):
    key = new_guest_key()
    response = api.post("create_session", {}, guest=key)
    assert response.status_code == 201
    return key, response.json()["sessionId"]


@pytest.mark.parametrize("value", STRINGS)
def test_submit_response_ids_refuse_anything_but_a_uuid(api, db, own_session, value):
    key, session_id = own_session
    before = snapshot(db)
    for body in (
        {"sessionId": value, "data": 1},
        {"sessionId": session_id, "responseId": value, "data": 1},
        {"sessionId": session_id, "level": value, "data": 1},
    ):
        assert_error(api.post("submit_response", body, guest=key), 400, "invalid_argument")
    assert snapshot(db) == before


@pytest.mark.parametrize("level", [-1, 2**31, 2**63, 10**400, 1.5, 1e308, True, [1], {"$gt": 0}])
def test_a_level_out_of_range_or_of_another_type_is_refused(api, db, own_session, level):
    key, session_id = own_session
    before = snapshot(db)
    assert_error(
        api.post("submit_response", {"sessionId": session_id, "level": level, "data": 1}, guest=key),
        400,
        "invalid_argument",
    )
    assert snapshot(db) == before


@pytest.mark.parametrize(
    "data",
    [
        *STRINGS,
        {value: value for value in STRINGS},
        HUGE_NUMBERS,
        {"numbers": HUGE_NUMBERS, "key with 'quote'": [None, True, False, "", [], {}]},
    ],
)
def test_data_is_stored_verbatim(api, db, own_session, data):
    key, session_id = own_session
    response = api.post("submit_response", {"sessionId": session_id, "level": 2**31 - 1, "data": data}, guest=key)
    assert response.status_code == 201, response.text
    (stored,) = rows(
        db, "SELECT data, level FROM responses WHERE id = CAST(:id AS uuid)", id=response.json()["responseId"]
    )
    assert same_json(data, stored.data) and stored.level == 2**31 - 1


@pytest.mark.parametrize("raw", UNPARSABLE_NUMBERS + UNSTORABLE_STRINGS)
def test_values_json_or_postgresql_cannot_hold_are_refused(api, db, own_session, raw):
    key, session_id = own_session
    before = snapshot(db)
    for function, body in (
        ("submit_response", f'{{"sessionId": "{session_id}", "data": {raw}}}'),
        (
            "submit_response",
            f'{{"sessionId": "{session_id}", "data": {{{raw}: 1}}}}'
            if raw.startswith('"')
            else f'{{"sessionId": "{session_id}", "data": [{raw}]}}',
        ),
        ("create_session", f'{{"metadata": {{"k": {raw}}}}}'),
        ("register", f'{{"displayName": {raw}}}'),
    ):
        response = post_raw(api, function, body, **{"X-Guest-Key": key})
        assert_4xx(response)
    assert snapshot(db) == before


@pytest.mark.parametrize("depth", [65, 1000, 100_000])
def test_deeply_nested_json_is_refused(api, db, own_session, depth):
    key, session_id = own_session
    before = snapshot(db)
    nested = "[" * depth + "]" * depth
    for function, body in (
        ("submit_response", f'{{"sessionId": "{session_id}", "data": {nested}}}'),
        ("create_session", f'{{"metadata": {{"k": {nested}}}}}'),
        ("create_session", nested),
    ):
        response = post_raw(api, function, body, **{"X-Guest-Key": key})
        assert_4xx(response)
        # At the top level 65 brackets are 64 levels: not too deep, but not an object either.
        assert (response.status_code, response.json()["error"]["code"]) in (
            (400, "invalid_json"),
            (400, "invalid_argument"),
        )
    assert snapshot(db) == before


def test_nesting_within_the_limit_is_stored_verbatim(api, db, own_session):
    key, session_id = own_session
    data = 0
    for _ in range(60):
        data = {"d": [data]} if isinstance(data, int) or len(str(data)) % 2 else [data]
    response = api.post("submit_response", {"sessionId": session_id, "data": data}, guest=key)
    assert response.status_code == 201, response.text
    assert (
        scalar(db, "SELECT data FROM responses WHERE id = CAST(:id AS uuid)", id=response.json()["responseId"]) == data
    )


# --- register ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [*STRINGS, "😀" * 100, "é" * 50, "ﷺ" * 100])
def test_display_name_is_stored_verbatim(api, db, auth_emulator, name):
    user = auth_emulator.new_user()
    response = api.post("register", {"displayName": name}, token=user.id_token)
    assert response.status_code == 201, response.text
    assert response.json()["user"]["displayName"] == name
    assert scalar(db, "SELECT display_name FROM users WHERE id = :id", id=user.uid) == name


@pytest.mark.parametrize(
    "name",
    [
        "😀" * 101,
        "e\u0301" * 51,
        "a\nb",
        "a\tb",
        "tab\u0007bell",
        "next\u0085line",
        "a\u0000b",
        "   ",
        "",
        7,
        ["x"],
        {"x": 1},
    ],
)
def test_a_display_name_too_long_in_code_points_or_with_control_characters_is_refused(api, db, auth_emulator, name):
    user = auth_emulator.new_user()
    before = snapshot(db)
    response = api.post("register", {"displayName": name}, token=user.id_token)
    assert_4xx(response)
    assert snapshot(db) == before


# --- headers and bodies -----------------------------------------------------------------------

ENDPOINTS = [
    ("POST", "create_session", {}),
    ("POST", "submit_response", {"sessionId": str(uuid.uuid4()), "data": 1}),
    ("GET", "get_visitor", None),
    ("POST", "register", {}),
    ("GET", "export_my_data", None),
    ("POST", "create_claim_code", {}),
]


def call(api, method, function, body, headers) -> requests.Response:
    return requests.request(method, api.url(function), json=body, headers=headers, timeout=30)


@pytest.mark.parametrize("value", SQL_INJECTION + [v.encode("utf-8") for v in UNICODE] + [b"\xff\xfe\xc3\x28" * 10])
def test_hostile_credentials_are_refused_at_every_endpoint(api, db, value):
    before = snapshot(db)
    for method, function, body in ENDPOINTS:
        bad_key = call(api, method, function, body, {"X-Guest-Key": value})
        expected = 401 if function == "register" else 400  # register needs a token first
        assert_error(bad_key, expected, "unauthenticated" if expected == 401 else "invalid_argument")
        prefix = b"Bearer " if isinstance(value, bytes) else "Bearer "
        bad_token = call(api, method, function, body, {"Authorization": prefix + value})
        assert_error(bad_token, 401, "unauthenticated")
    assert snapshot(db) == before


@pytest.mark.parametrize("value", SQL_INJECTION + [v.encode("utf-8") for v in UNICODE] + [b"\xff\xfe\xc3\x28" * 10])
def test_hostile_anonymous_tokens_and_claim_codes_are_refused(api, db, auth_emulator, value):
    """register's other two ways to name a visitor (SPEC §13): never a 500, nothing stored
    (a claim code that is not 8 characters of its alphabet is not even counted as a try)."""
    user = auth_emulator.new_user()
    before = snapshot(db)
    token = {"Authorization": f"Bearer {user.id_token}"}
    assert_error(call(api, "POST", "register", {}, {**token, "X-Anonymous-Token": value}), 401, "unauthenticated")
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    answer = call(api, "POST", "register", {"claimCode": text}, token)
    assert_error(answer, 400, "invalid_argument")
    assert snapshot(db) == before
    assert scalar(db, "SELECT count(*) FROM claim_code_attempts") == 0


@pytest.mark.parametrize("value", SQL_INJECTION + [v.encode("utf-8") for v in UNICODE])
def test_hostile_origin_trace_and_other_headers_change_nothing(api, db, value):
    key = new_guest_key()
    headers = {
        "X-Guest-Key": key,
        "Origin": value,
        "X-Cloud-Trace-Context": value,
        "Referer": value,
        "User-Agent": value,
        "Cookie": value,
        "X-Forwarded-For": value,
    }
    response = call(api, "POST", "create_session", {"experimentId": "h"}, headers)
    assert response.status_code == 201, response.text
    assert "Access-Control-Allow-Origin" not in response.headers
    assert rows(db, "SELECT experiment_id FROM sessions") == [("h",)]
    preflight = requests.options(
        api.url("create_session"), headers={"Origin": value, "Access-Control-Request-Method": "POST"}
    )
    assert_error(preflight, 403, "permission_denied")
    assert "Access-Control-Allow-Origin" not in preflight.headers


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json; charset=utf-16",
        "text/plain",
        "application/json; charset=' OR 1=1",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/json\u00e9",
    ],
)
def test_a_hostile_content_type_is_415_and_writes_nothing(api, db, content_type):
    before = snapshot(db)
    response = requests.post(
        api.url("create_session"),
        data=b'{"experimentId": "x"}',
        timeout=30,
        headers={"Content-Type": content_type.encode("latin-1"), "X-Guest-Key": new_guest_key()},
    )
    assert_error(response, 415, "unsupported_media_type")
    assert snapshot(db) == before


@pytest.mark.parametrize(
    "body",
    [
        b"\xef\xbb\xbf{}",
        b"\xff\xfe{\x00}\x00",
        b'{"a": "\xc3"}',
        b"{\x00}",
        b'{"experimentId": "a", "experimentId": "b\'; DROP TABLE x; --"}',
        b"[" + b"{}," * 20000 + b"{}]",
        b'"' + b"\\u0000" * 1000 + b'"',
    ],
)
def test_a_hostile_body_is_400_and_writes_nothing(api, db, body):
    before = snapshot(db)
    response = post_raw(api, "create_session", body, **{"X-Guest-Key": new_guest_key()})
    assert_4xx(response)
    assert response.status_code == 400
    assert snapshot(db) == before


@pytest.mark.parametrize("value", [b"nul\x00byte", b"bell\x07" + b"a" * 40, b"\x7f" * 40])
def test_control_bytes_in_a_header_are_refused_before_the_function_runs(api, db, value):
    """gunicorn (as Google's front end) refuses such a header itself: a 400, not our JSON, nothing written."""
    before = snapshot(db)
    for name in ("X-Guest-Key", "Authorization"):
        response = call(api, "POST", "create_session", {}, {name: value})
        assert response.status_code == 400
    assert snapshot(db) == before
