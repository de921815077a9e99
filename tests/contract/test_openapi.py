"""openapi.yaml is a valid OpenAPI 3.1 document, states the limits the code enforces, and every
answer of the running functions - success and error - conforms to it (openapi-core validates
status, headers and body of each one)."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
import requests
import yaml
from openapi_core import OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse
from openapi_spec_validator import OpenAPIV31SpecValidator
from pydantic import TypeAdapter

from devtools.ports import free_port
from devtools.stack import ROOT, FunctionsServer
from functions import BY_NAME, HTTP
from shared.core import errors
from shared.visitors import claim_codes, guest_limit, upload_tickets
from shared.web import http, limits, models
from shared.web.auth import GUEST_KEY_PATTERN
from tests.conftest import ALLOWED_ORIGIN
from tests.support import new_guest_key, rows, scalar

HTTP_FUNCTIONS = tuple(f.name for f in HTTP)  # the rows of functions.FUNCTIONS that answer HTTP
DOCUMENT_PATH = ROOT / "openapi.yaml"
DOCUMENT = yaml.safe_load(DOCUMENT_PATH.read_text())
OPENAPI = OpenAPI.from_file_path(str(DOCUMENT_PATH))


def conforms(response: requests.Response, status: int, code: str | None = None) -> dict | None:
    """The answer has this status (and error code) and conforms to openapi.yaml; its JSON body."""
    assert response.status_code == status, response.text
    OPENAPI.validate_response(RequestsOpenAPIRequest(response.request), RequestsOpenAPIResponse(response))
    json_answer = response.headers.get("Content-Type", "").startswith("application/json")
    body = response.json() if response.content and json_answer else None
    if code is not None:
        assert body["error"]["code"] == code, body
    return body


def schema(name: str) -> dict:
    return DOCUMENT["components"]["schemas"][name]


# --- The document itself ---


def test_the_document_is_valid_openapi_3_1():
    OpenAPIV31SpecValidator(DOCUMENT).validate()  # raises with every problem found
    assert DOCUMENT["openapi"].startswith("3.1")


def test_it_documents_every_http_function_at_its_served_path():
    assert set(DOCUMENT["paths"]) == {f"/{name}" for name in HTTP_FUNCTIONS}
    operation_ids = {op["operationId"] for item in DOCUMENT["paths"].values() for op in item.values()}
    assert set(HTTP_FUNCTIONS) <= operation_ids
    # Each at the method of its row under its own operationId; the other method is its 405, and
    # OPTIONS its preflight.
    # A row that answers both (configure_experiment: GET reads, POST writes) has its POST under its
    # name, its GET under <name>_read, and PUT as its 405.
    for name in HTTP_FUNCTIONS:
        methods = [method.lower() for method in BY_NAME[name].methods]
        own = {methods[0]: name} if len(methods) == 1 else {"post": name, "get": f"{name}_read"}
        other = {"get": "post", "post": "get"}[methods[0]] if len(methods) == 1 else "put"
        item = DOCUMENT["paths"][f"/{name}"]
        assert {verb: op["operationId"] for verb, op in item.items()} == {
            **own,
            other: f"{name}_wrong_method",
            "options": f"{name}_preflight",
        }, name
    assert any(server["url"].endswith("/api") for server in DOCUMENT["servers"])  # the Hosting alias


def test_it_states_the_limits_the_code_enforces():
    session, response, registration = schema("NewSession"), schema("NewResponse"), schema("Registration")
    assert session["properties"]["metadata"]["x-max-encoded-bytes"] == limits.MAX_METADATA_BYTES
    assert response["properties"]["data"]["x-max-encoded-bytes"] == limits.MAX_DATA_BYTES
    assert response["properties"]["level"]["maximum"] == limits.MAX_LEVEL
    assert registration["properties"]["displayName"]["oneOf"][0]["maxLength"] == limits.DISPLAY_NAME_MAX
    assert registration["properties"]["claimCode"]["oneOf"][0]["maxLength"] == limits.CLAIM_CODE_MAX
    assert (
        schema("ClaimCode")["properties"]["claimCode"]["pattern"]
        == f"^[{claim_codes.ALPHABET}]{{{claim_codes.CODE_LENGTH}}}$"
    )
    too_many = DOCUMENT["components"]["responses"]["TooManyRequests"]["headers"]["Retry-After"]["schema"]
    assert too_many["maximum"] == claim_codes.WRONG_CODE_WINDOW_SECONDS
    limited = DOCUMENT["components"]["responses"]["GuestLimitReached"]["headers"]["Retry-After"]["schema"]
    assert limited["maximum"] == guest_limit.WINDOW_SECONDS
    assert all(header in http.ALLOWED_HEADERS for header in ("X-Guest-Key", "X-Anonymous-Token", "X-Firebase-AppCheck"))
    assert f"{http.MAX_BODY_BYTES} bytes" in DOCUMENT["components"]["responses"]["PayloadTooLarge"]["description"]
    experiment = TypeAdapter(models.ExperimentId).json_schema()
    assert {name: schema("ExperimentId")[name] for name in experiment} == experiment
    assert schema("GuestKey")["pattern"] == f"^{GUEST_KEY_PATTERN.pattern}$"
    assert schema("UploadTicketRequest")["properties"]["name"]["maxLength"] == limits.UPLOAD_NAME_MAX
    unnamed = re.sub(r"\(\?P<\w+>([^)]*)\)", r"\1", upload_tickets.TICKET.pattern)  # (?P<expires>...) -> ...
    assert schema("UploadTicket")["properties"]["ticket"]["pattern"] == f"^{unnamed}$"
    # Unknown fields are refused by every body model, and so by the document.
    for name, model in (
        ("NewSession", models.NewSession),
        ("NewResponse", models.NewResponse),
        ("Registration", models.Registration),
        ("NewClaimCode", models.NewClaimCode),
        ("UploadTicketRequest", models.UploadTicketRequest),
    ):
        assert schema(name)["additionalProperties"] is False and model.model_config["extra"] == "forbid"
        assert set(schema(name)["properties"]) == set(model.model_fields)
        assert set(schema(name).get("required", [])) == {
            f for f, info in model.model_fields.items() if info.is_required()
        }


def test_the_app_check_header_is_on_exactly_the_functions_that_read_it():
    from shared.web.app_check import HEADER

    APP_CHECK_FUNCTIONS = {f.name for f in HTTP if f.app_check}  # as their rows say

    assert DOCUMENT["components"]["parameters"]["AppCheck"]["name"] == HEADER
    for path, item in DOCUMENT["paths"].items():
        operation = next(op for op in item.values() if op["operationId"] == path[1:])
        refs = [parameter.get("$ref") for parameter in operation.get("parameters", [])]
        assert ("#/components/parameters/AppCheck" in refs) == (path[1:] in APP_CHECK_FUNCTIONS), path
        if path[1:] in APP_CHECK_FUNCTIONS:
            assert {"401", "503"} <= set(operation["responses"]), path


def test_its_error_codes_are_exactly_the_services():
    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    codes = {errors.ServiceError.code} | {cls.code for cls in subclasses(errors.ServiceError)}
    assert set(schema("Error")["properties"]["error"]["properties"]["code"]["enum"]) == codes
    by_status = {
        400: "BadRequestError",
        401: "UnauthenticatedError",
        403: "ForbiddenError",
        404: "NotFoundError",
        405: "MethodNotAllowedError",
        409: "ConflictError",
        413: "PayloadTooLargeError",
        415: "UnsupportedMediaTypeError",
        429: "TooManyRequestsError",
        500: "InternalError",
        503: "UnavailableError",
    }
    for cls in [errors.ServiceError, *subclasses(errors.ServiceError)]:
        narrowed = schema(by_status[cls.status])["allOf"][1]["properties"]["error"]["properties"]["code"]
        assert cls.code in narrowed.get("enum", [narrowed.get("const")]), cls


# --- Real answers conform ---


def test_create_session_answers_conform(api, db, auth_emulator):
    key = new_guest_key()
    created = conforms(api.post("create_session", {"experimentId": "exp-1", "metadata": {"a": [1]}}, guest=key), 201)
    retried = conforms(api.post("create_session", {"sessionId": created["sessionId"]}, guest=key), 200)
    assert retried == created
    # The same sessionId from another guest: 409, and that guest is not even created.
    conforms(api.post("create_session", {"sessionId": created["sessionId"]}, guest=new_guest_key()), 409, "conflict")
    user = auth_emulator.new_user()
    as_user = conforms(api.post("create_session", {}, token=user.id_token), 201)
    assert as_user["userId"] == user.uid and as_user["guestId"] is None
    # The Firebase Hosting alias answers the same.
    conforms(api.post("api/create_session", {}, guest=key), 201)
    assert scalar(db, "SELECT count(*) FROM guests") == 1
    assert scalar(db, "SELECT count(*) FROM sessions") == 3

    refusals = [
        (api.post("create_session", {"experimentId": "has space"}, guest=key), 400, "invalid_argument"),
        (api.post("create_session", {"sessionId": "not-a-uuid"}, guest=key), 400, "invalid_argument"),
        (api.post("create_session", {"unknown": 1}, guest=key), 400, "invalid_argument"),
        (api.post("create_session", [1], guest=key), 400, "invalid_argument"),
        (
            api.post("create_session", {"metadata": {"x": "y" * limits.MAX_METADATA_BYTES}}, guest=key),
            400,
            "invalid_argument",
        ),
        (
            api.post("create_session", data=b'{"a": ', guest=key, headers={"Content-Type": "application/json"}),
            400,
            "invalid_json",
        ),
        (api.post("create_session", {"metadata": {"a": "\x00"}}, guest=key), 400, "invalid_json"),
        (api.post("create_session", {}, guest="too-short"), 400, "invalid_argument"),
        (api.post("create_session", {}), 401, "unauthenticated"),
        (api.post("create_session", {}, token="not-a-token", guest=key), 401, "unauthenticated"),
        (
            api.post(
                "create_session",
                data=b"x" * (http.MAX_BODY_BYTES + 1),
                guest=key,
                headers={"Content-Type": "application/json"},
            ),
            413,
            "payload_too_large",
        ),
        (
            api.post(
                "create_session", data=b"a=1", guest=key, headers={"Content-Type": "application/x-www-form-urlencoded"}
            ),
            415,
            "unsupported_media_type",
        ),
        (api.get("create_session", guest=key), 405, "method_not_allowed"),
        (api.get("api/create_session", guest=key), 405, "method_not_allowed"),
    ]
    for response, status, code in refusals:
        conforms(response, status, code)
    assert scalar(db, "SELECT count(*) FROM sessions") == 3  # nothing from the refusals
    assert refusals[-1][0].headers["Allow"] == "POST, OPTIONS"


def test_the_guest_creation_limit_and_run_maintenance_refusals_conform(stack, db, tmp_path):
    """429 with Retry-After from a server whose limit is 1; run_maintenance on a server without
    MAINTENANCE_INVOKER refuses everyone (tests/e2e/test_maintenance.py checks its 200)."""
    server = FunctionsServer(free_port(), {**stack.env(), "GUEST_LIMIT_PER_HOUR": "1"}, tmp_path / "f.log").start()
    try:
        url = server.url
        conforms(
            requests.post(f"{url}/create_session", json={}, headers={"X-Guest-Key": new_guest_key()}, timeout=30), 201
        )
        refused = requests.post(f"{url}/create_session", json={}, headers={"X-Guest-Key": new_guest_key()}, timeout=30)
        conforms(refused, 429, "resource_exhausted")
        assert 3500 <= int(refused.headers["Retry-After"]) <= 3600
        conforms(requests.post(f"{url}/run_maintenance", timeout=30), 401, "unauthenticated")
        conforms(
            requests.post(f"{url}/run_maintenance", headers={"Authorization": "Bearer x"}, timeout=30),
            401,
            "unauthenticated",
        )
        conforms(requests.get(f"{url}/run_maintenance", timeout=30), 405, "method_not_allowed")
        conforms(
            requests.post(
                f"{url}/run_maintenance", data=b"{", timeout=30, headers={"Content-Type": "application/json"}
            ),
            400,
            "invalid_json",
        )
    finally:
        server.stop()
    assert scalar(db, "SELECT count(*) FROM guests") == 1


def test_submit_response_answers_conform(api, db):
    key, other = new_guest_key(), new_guest_key()
    session = api.post("create_session", {}, guest=key).json()["sessionId"]
    others = api.post("create_session", {}, guest=other).json()["sessionId"]
    response_id = str(uuid.uuid4())
    body = {"sessionId": session, "responseId": response_id, "level": 3, "data": {"answer": [1, None, "é"]}}
    created = conforms(api.post("submit_response", body, guest=key), 201)
    assert conforms(api.post("submit_response", body, guest=key), 200) == created
    assert created["level"] == 3 and created["visitorNumber"] == 1
    conforms(api.post("submit_response", {"sessionId": session, "data": None}, guest=key), 201)

    conforms(api.post("submit_response", {**body, "sessionId": others}, guest=other), 409, "conflict")
    conforms(api.post("submit_response", {"sessionId": others, "data": 1}, guest=key), 403, "permission_denied")
    conforms(api.post("submit_response", {"sessionId": str(uuid.uuid4()), "data": 1}, guest=key), 404, "not_found")
    conforms(api.post("submit_response", {"sessionId": session}, guest=key), 400, "invalid_argument")
    conforms(
        api.post("submit_response", {"sessionId": session, "data": 1, "level": -1}, guest=key), 400, "invalid_argument"
    )
    conforms(
        api.post("submit_response", {"sessionId": session, "data": 1, "level": "5"}, guest=key), 400, "invalid_argument"
    )
    conforms(
        api.post("submit_response", {"sessionId": session, "data": "x" * limits.MAX_DATA_BYTES}, guest=key),
        400,
        "invalid_argument",
    )
    conforms(api.post("submit_response", {"sessionId": session, "data": 1}), 401, "unauthenticated")
    conforms(api.get("submit_response", guest=key), 405, "method_not_allowed")
    assert [r.level for r in rows(db, "SELECT level FROM responses ORDER BY created_at")] == [3, None]


def test_create_upload_ticket_answers_conform(api, db, auth_emulator):
    key, other = new_guest_key(), new_guest_key()
    session = api.post("create_session", {}, guest=key).json()["sessionId"]
    others = api.post("create_session", {}, guest=other).json()["sessionId"]

    made = conforms(api.post("create_upload_ticket", {"sessionId": session, "name": "a b é.png"}, guest=key), 201)
    assert made["path"] == f"sessions/{session}/a b é.png"
    conforms(
        api.post("create_upload_ticket", {"sessionId": others, "name": "a.png"}, guest=key), 403, "permission_denied"
    )
    conforms(
        api.post("create_upload_ticket", {"sessionId": str(uuid.uuid4()), "name": "a.png"}, guest=key), 404, "not_found"
    )
    for bad in ({"sessionId": session}, {"sessionId": session, "name": "a/b"}, {"sessionId": session, "name": ".."}):
        conforms(api.post("create_upload_ticket", bad, guest=key), 400, "invalid_argument")
    conforms(api.post("create_upload_ticket", {"sessionId": session, "name": "a.png"}), 401, "unauthenticated")
    conforms(api.get("create_upload_ticket", guest=key), 405, "method_not_allowed")
    assert api.post("delete_my_data", {}, guest=key).json()["status"] == "done"
    conforms(api.post("create_upload_ticket", {"sessionId": session, "name": "a.png"}, guest=key), 404, "not_found")


def test_get_visitor_answers_conform(api, db, auth_emulator):
    key = new_guest_key()
    conforms(api.get("get_visitor", guest=key), 404, "not_found")
    session = api.post("create_session", {"experimentId": "e"}, guest=key).json()
    api.post("submit_response", {"sessionId": session["sessionId"], "data": 1}, guest=key)
    visitor = conforms(api.get("get_visitor", guest=key), 200)
    assert visitor["sessions"][0]["responseCount"] == 1 and visitor["guestId"] == session["guestId"]
    conforms(api.get("get_visitor", guest="x" * 200), 400, "invalid_argument")
    conforms(api.get("get_visitor"), 401, "unauthenticated")
    conforms(api.post("get_visitor", {}, guest=key), 405, "method_not_allowed")

    user = auth_emulator.new_user()
    conforms(api.post("register", {}, token=user.id_token, guest=key), 201)
    conforms(api.get("get_visitor", guest=key), 403, "guest_claimed")
    conforms(api.post("create_session", {}, guest=key), 403, "guest_claimed")
    as_user = conforms(api.get("get_visitor", token=user.id_token), 200)
    assert as_user["userId"] == user.uid and as_user["visitorNumber"] == session["visitorNumber"]


def test_register_answers_conform(api, db, auth_emulator):
    key = new_guest_key()
    api.post("create_session", {}, guest=key)
    user = auth_emulator.new_user()
    registered = conforms(api.post("register", {"displayName": "Ada"}, token=user.id_token, guest=key), 201)
    assert registered["migrated"] is True and registered["migratedSessions"] == 1
    again = conforms(api.post("register", {}, token=user.id_token, guest=key), 200)
    assert again["migratedSessions"] == 0 and again["user"]["displayName"] == "Ada"

    numbered = auth_emulator.new_user()
    api.post("create_session", {}, token=numbered.id_token)
    second_key = new_guest_key()
    api.post("create_session", {}, guest=second_key)
    # create_session made the users row already: 200, not 201.
    merged = conforms(api.post("register", None, token=numbered.id_token, guest=second_key), 200)
    assert merged["mergedFromVisitorNumber"] == 3 and merged["user"]["visitorNumber"] == 2

    users_before = rows(db, "SELECT * FROM users ORDER BY id")
    conforms(api.post("register", {}, token=auth_emulator.new_user().id_token, guest=key), 409, "conflict")
    conforms(api.post("register", {}, token=auth_emulator.sign_up(None).id_token), 403, "permission_denied")
    conforms(api.post("register", {}, guest=new_guest_key()), 401, "unauthenticated")
    conforms(api.post("register", {"displayName": "   "}, token=user.id_token), 400, "invalid_argument")
    conforms(api.post("register", {"displayName": "a\nb"}, token=user.id_token), 400, "invalid_argument")
    conforms(api.post("register", {}, token=user.id_token, guest="bad key"), 400, "invalid_argument")
    conforms(
        api.post("register", data=b"<x/>", token=user.id_token, headers={"Content-Type": "text/xml"}),
        415,
        "unsupported_media_type",
    )
    conforms(api.get("register", token=user.id_token), 405, "method_not_allowed")
    assert rows(db, "SELECT * FROM users ORDER BY id") == users_before


def test_export_my_data_answers_conform(api, db, auth_emulator):
    key = new_guest_key()
    conforms(api.get("export_my_data", guest=key), 404, "not_found")
    session = api.post("create_session", {"experimentId": "e", "metadata": {"m": [1]}}, guest=key).json()
    api.post("submit_response", {"sessionId": session["sessionId"], "data": None}, guest=key)
    api.post("submit_response", {"sessionId": session["sessionId"], "level": 2, "data": {"é": [1.5]}}, guest=key)
    exported = conforms(api.get("export_my_data", guest=key), 200)
    assert [r["level"] for r in exported["sessions"][0]["responses"]] == [None, 2]
    conforms(api.get("api/export_my_data", guest=key), 200)
    conforms(api.get("export_my_data", guest="x" * 200), 400, "invalid_argument")
    conforms(api.get("export_my_data"), 401, "unauthenticated")
    conforms(api.post("export_my_data", {}, guest=key), 405, "method_not_allowed")

    user = auth_emulator.new_user()
    conforms(api.get("export_my_data", token=user.id_token), 404, "not_found")
    conforms(api.post("register", {"displayName": "Ada"}, token=user.id_token, guest=key), 201)
    conforms(api.get("export_my_data", guest=key), 403, "guest_claimed")
    as_user = conforms(api.get("export_my_data", token=user.id_token), 200)
    assert as_user["displayName"] == "Ada" and len(as_user["sessions"]) == 1


def test_anonymous_account_claims_answer_conform(api, db, auth_emulator):
    anonymous, user = auth_emulator.anonymous(), auth_emulator.new_user()
    session = conforms(api.post("create_session", {}, token=anonymous.id_token), 201)
    claimed = conforms(
        api.post("register", {}, token=user.id_token, headers={"X-Anonymous-Token": anonymous.id_token}), 201
    )
    assert claimed["migratedSessions"] == 1 and claimed["user"]["visitorNumber"] == session["visitorNumber"]
    conforms(api.post("register", {}, token=user.id_token, headers={"X-Anonymous-Token": anonymous.id_token}), 200)
    conforms(
        api.post(
            "register", {}, token=auth_emulator.new_user().id_token, headers={"X-Anonymous-Token": anonymous.id_token}
        ),
        409,
        "conflict",
    )
    conforms(
        api.post("register", {}, token=user.id_token, headers={"X-Anonymous-Token": user.id_token}),
        400,
        "invalid_argument",
    )
    conforms(
        api.post("register", {}, token=user.id_token, headers={"X-Anonymous-Token": "not-a-token"}),
        401,
        "unauthenticated",
    )
    for answer in (
        api.post("create_session", {}, token=anonymous.id_token),
        api.post("submit_response", {"sessionId": session["sessionId"], "data": 1}, token=anonymous.id_token),
        api.get("get_visitor", token=anonymous.id_token),
    ):
        conforms(answer, 403, "guest_claimed")


def test_claim_code_answers_conform(api, db, auth_emulator):
    key = new_guest_key()
    conforms(api.post("create_claim_code", {}, guest=key), 404, "not_found")
    api.post("create_session", {}, guest=key)
    made = conforms(api.post("create_claim_code", None, guest=key), 201)
    assert made["claimCode"] != conforms(api.post("create_claim_code", {}, guest=key), 201)["claimCode"]
    code = conforms(api.post("create_claim_code", {}, guest=key), 201)["claimCode"]
    conforms(api.post("create_claim_code", {"x": 1}, guest=key), 400, "invalid_argument")
    conforms(api.post("create_claim_code", {}), 401, "unauthenticated")
    conforms(api.post("create_claim_code", {}, token=auth_emulator.new_user().id_token), 403, "permission_denied")
    conforms(api.get("create_claim_code", guest=key), 405, "method_not_allowed")
    conforms(api.get("api/create_claim_code", guest=key), 405, "method_not_allowed")

    user, guesser = auth_emulator.new_user(), auth_emulator.new_user()
    conforms(api.post("register", {"claimCode": "no"}, token=user.id_token), 400, "invalid_argument")
    for _ in range(claim_codes.MAX_WRONG_CODES):
        conforms(api.post("register", {"claimCode": "23456789"}, token=guesser.id_token), 400, "invalid_argument")
    limited = conforms(api.post("register", {"claimCode": code}, token=guesser.id_token), 429, "resource_exhausted")
    assert limited["error"]["message"]
    claimed = conforms(api.post("register", {"claimCode": code}, token=user.id_token), 201)
    assert claimed["migrated"] is True and claimed["migratedSessions"] == 1
    conforms(api.post("create_claim_code", {}, guest=key), 403, "guest_claimed")


GET_FUNCTIONS = {f.name for f in HTTP if f.method == "GET"}


@pytest.mark.parametrize("function", HTTP_FUNCTIONS)
def test_preflights_and_cors_answers_conform(api, function):
    granted = conforms(
        requests.options(
            api.url(function),
            headers={
                "Origin": ALLOWED_ORIGIN,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type, x-guest-key",
            },
            timeout=30,
        ),
        204,
    )
    assert granted is None
    refused = requests.options(api.url(function), headers={"Origin": "https://evil.example"}, timeout=30)
    conforms(refused, 403, "permission_denied")
    assert "Access-Control-Allow-Origin" not in refused.headers
    answer = requests.request(
        "GET" if function in GET_FUNCTIONS else "POST",
        api.url(function),
        headers={"Origin": ALLOWED_ORIGIN},
        timeout=30,
    )
    conforms(answer, 401, "unauthenticated")
    assert answer.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN


@pytest.fixture
def database_down(stack, tmp_path: Path):
    """The functions with a database that refuses every connection (nothing listens on its port)."""
    env = {**stack.env(), "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"}
    server = FunctionsServer(free_port(), env, tmp_path / "functions.log").start()
    yield server
    server.stop()


def test_researcher_answers_conform(api, db, auth_emulator):
    key = new_guest_key()
    session = api.post("create_session", {"experimentId": "a"}, guest=key).json()
    api.post("submit_response", {"sessionId": session["sessionId"], "level": 1, "data": {"x": 1}}, guest=key)
    api.post("create_session", {}, guest=new_guest_key())
    researcher = auth_emulator.researcher(True).id_token
    stats = conforms(api.get("get_study_stats", token=researcher), 200)
    assert [e["experimentId"] for e in stats["experiments"]] == ["a", None]
    conforms(api.get("api/get_study_stats", token=researcher), 200)
    for params in (
        "",
        "?format=csv",
        "?format=jsonl&table=visitors",
        "?experimentId=a&experimentId=&from=2026-01-01T00:00:00Z",
    ):
        conforms(api.get(f"export_data{params}", token=researcher), 200)
    conforms(api.get("export_data?format=zip&table=responses", token=researcher), 400, "invalid_argument")
    conforms(api.get("get_study_stats?experimentId=a%20b", token=researcher), 400, "invalid_argument")
    for function in ("get_study_stats", "export_data"):
        conforms(api.get(function), 401, "unauthenticated")
        conforms(api.get(function, guest=key), 401, "unauthenticated")
        conforms(api.get(function, token=auth_emulator.new_user().id_token), 403, "permission_denied")
        conforms(
            api.get(f"{function}?experimentId=b", token=auth_emulator.researcher(["a"]).id_token),
            403,
            "permission_denied",
        )
        conforms(api.post(function, {}, token=researcher), 405, "method_not_allowed")


def test_experiment_answers_conform(api, db, auth_emulator):
    researcher = auth_emulator.researcher(True).id_token
    experiment_id = f"exp-{uuid.uuid4().hex[:8]}"
    document = {
        "experimentId": experiment_id,
        "conditions": [{"name": "a", "quota": 3}, {"name": "b"}],
        "platform": "prolific",
        "outcomes": {"completed": {"code": "C0DE0001"}},
    }
    conforms(api.post("configure_experiment", document, token=researcher), 200)
    conforms(api.get(f"configure_experiment?experimentId={experiment_id}", token=researcher), 200)
    conforms(api.get("configure_experiment", token=researcher), 200)
    conforms(api.get("configure_experiment?experimentId=none-such", token=researcher), 404, "not_found")
    conforms(api.post("configure_experiment", {**document, "redirectUrl": "https://x.example/"}, token=researcher), 400)
    participant = {"participantId": "P" * 24, "studyId": "S" * 24}  # the experiment runs on Prolific
    session = api.post(
        "create_session", {"experimentId": experiment_id, "participant": participant}, guest=new_guest_key()
    ).json()
    conforms(api.post("configure_experiment", {**document, "platform": "sona", "outcomes": {}}, token=researcher), 409)
    conforms(api.post("exclude_session", {"sessionId": session["sessionId"]}, token=researcher), 200)
    conforms(api.post("exclude_session", {"sessionId": str(uuid.uuid4())}, token=researcher), 404, "not_found")
    scoped = auth_emulator.researcher(["other"]).id_token
    conforms(api.post("exclude_session", {"sessionId": session["sessionId"]}, token=scoped), 403)
    conforms(api.post("configure_experiment", document, token=scoped), 403, "permission_denied")
    conforms(api.post("configure_experiment", document), 401, "unauthenticated")
    conforms(requests.put(api.url("configure_experiment"), timeout=30), 405, "method_not_allowed")
    conforms(api.get("exclude_session", token=researcher), 405, "method_not_allowed")
    trail = conforms(api.get("get_researcher_actions", token=researcher), 200)
    assert {a["action"] for a in trail["actions"]} == {"configure_experiment", "exclude_session"}


def test_unavailable_answers_conform(database_down, auth_emulator):
    url, key = database_down.url, new_guest_key()
    user = auth_emulator.new_user()
    researcher = {"Authorization": f"Bearer {auth_emulator.researcher(True).id_token}"}
    answers = [
        requests.post(f"{url}/create_session", json={}, headers={"X-Guest-Key": key}, timeout=30),
        requests.post(
            f"{url}/submit_response",
            json={"sessionId": str(uuid.uuid4()), "data": 1},
            headers={"X-Guest-Key": key},
            timeout=30,
        ),
        requests.get(f"{url}/get_visitor", headers={"X-Guest-Key": key}, timeout=30),
        requests.get(f"{url}/export_my_data", headers={"X-Guest-Key": key}, timeout=30),
        requests.post(f"{url}/register", json={}, headers={"Authorization": f"Bearer {user.id_token}"}, timeout=30),
        requests.post(f"{url}/api/create_session", json={}, headers={"X-Guest-Key": key}, timeout=30),
        requests.get(f"{url}/get_study_stats", headers=researcher, timeout=30),
        requests.get(f"{url}/export_data", headers=researcher, timeout=30),
        requests.get(f"{url}/export_data?format=csv", headers=researcher, timeout=30),
        requests.post(f"{url}/create_claim_code", json={}, headers={"X-Guest-Key": key}, timeout=30),
        requests.post(
            f"{url}/register",
            json={"claimCode": "23456789"},
            timeout=30,
            headers={"Authorization": f"Bearer {user.id_token}"},
        ),
    ]
    for answer in answers:
        conforms(answer, 503, "unavailable")
        assert int(answer.headers["Retry-After"]) >= 1


def test_the_check_itself_fails_on_a_nonconforming_answer(api, db):
    """conforms() is not a rubber stamp: a body, a status or a header off the document fails it."""
    from openapi_core.exceptions import OpenAPIError

    good = api.post("create_session", {}, guest=new_guest_key())
    conforms(good, 201)
    for spoil in (
        lambda r: setattr(r, "_content", b'{"sessionId": 1}'),
        lambda r: setattr(r, "status_code", 404),
        lambda r: r.headers.pop("Cache-Control"),
    ):
        response = api.post("create_session", {}, guest=new_guest_key())
        spoil(response)
        with pytest.raises(OpenAPIError):
            OPENAPI.validate_response(RequestsOpenAPIRequest(response.request), RequestsOpenAPIResponse(response))
