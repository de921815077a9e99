"""Schemathesis hooks for the fuzz run (loaded by `schemathesis run` through SCHEMATHESIS_HOOKS).

- Realistic credentials: most generated requests carry random or missing credentials and stop
  at 401/400; here a share of them is given a real guest key, a real Auth emulator token
  (registered, anonymous, or a researcher's) or a claimed guest's key, and submit_response bodies a real
  sessionId, and a share of preflights the allowed Origin, so that the fuzzer reaches the
  database code. The choice is a hash of the generated case, so a fixed seed gives the same
  requests.
- `refused_request_changes_nothing`: for every 4xx/5xx answer, the tables are exactly as they
  were before the request (row count and a digest of every row of each table).
- register is sometimes given a real anonymous account to claim (X-Anonymous-Token) or a real
  claim code (claimCode), so that the claims run, not only the checks in front of them.
- `generated_token_refused`: a generated (random) bearer token never opens an operation.
  (Schemathesis's own ignored_auth cannot tell the real tokens given here from generated ones.)
- The stack runs with APP_CHECK off (its default): the generated `X-Firebase-AppCheck` headers
  of the visitor-facing operations must be ignored (never a 500, never a refusal of their own).
- Every request is written as one JSON line to FUZZ_LOG, for the test to count.

Settings, from the environment: FUZZ_DATABASE_URL, FUZZ_CREDENTIALS (a JSON file written by
tests/contract/test_fuzz.py), FUZZ_ALLOWED_ORIGIN, FUZZ_LOG.
"""

from __future__ import annotations

import json
import os
import zlib
from functools import cache

import schemathesis
import sqlalchemy
from schemathesis.core.parameters import ParameterLocation

# claim_code_attempts is left out by design: a wrong claim code is refused (400) and counted.
TABLES = ("users", "guests", "sessions", "responses", "visitor_merges", "claim_codes")
# One statement: each table's row count and a digest of all its rows (updates show too).
_FINGERPRINT = sqlalchemy.text(
    " UNION ALL ".join(
        f"SELECT '{table}' AS name, count(*) AS n, "
        f"md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) AS digest "
        f"FROM {table} t"
        for table in TABLES
    )
)
_SECURED = {
    "create_session",
    "submit_response",
    "get_visitor",
    "register",
    "export_my_data",
    "create_claim_code",
    "create_upload_ticket",
    "get_study_stats",
    "export_data",
}
_PREFLIGHTS = {f"{name}_preflight" for name in _SECURED}
# The request in flight (the run uses one worker): its case id, the tables before it, and
# which credentials it was given. Keyed by Case.id, which copies of a case keep.
_last: dict = {}


@cache
def _engine() -> sqlalchemy.Engine:
    from shared.core.db import plain_engine

    return plain_engine(os.environ["FUZZ_DATABASE_URL"], pool_size=1)


@cache
def _credentials() -> dict:
    with open(os.environ["FUZZ_CREDENTIALS"]) as file:
        return json.load(file)


def fingerprint() -> dict:
    with _engine().connect() as conn:
        return {row.name: (row.n, row.digest) for row in conn.execute(_FINGERPRINT)}


_RESEARCH = {"get_study_stats", "export_data"}


def _choices(operation: str = "") -> list[tuple[str, dict]]:
    """(label, credential) pairs; 'generated' leaves the case's own headers. The researcher
    functions are mostly given researchers (one for every experiment, one for some), so that
    their few distinct cases reach the code behind the claim."""
    credentials = _credentials()
    if operation in _RESEARCH:
        researchers = [("researcher", researcher) for researcher in credentials["researchers"]]
        return [("generated", {}), ("user", credentials["users"][0]), *researchers, researchers[0]]
    choices: list[tuple[str, dict]] = [("generated", {})] * 3
    choices += [("guest", guest) for guest in credentials["guests"]]
    choices += [("user", user) for user in credentials["users"]]
    choices += [("anonymous", anonymous) for anonymous in credentials["anonymous"]]
    choices += [("claimed", claimed) for claimed in credentials["claimed"]]
    choices += [("researcher", researcher) for researcher in credentials["researchers"]]
    return choices


def _pick(case, salt: str, options: list):
    seen = repr(
        (
            salt,
            case.operation.label,
            case.body,
            sorted((case.headers or {}).items()),
            sorted((case.query or {}).items()),
        )
    )
    return options[zlib.crc32(seen.encode("utf-8", "surrogatepass")) % len(options)]


def _is_negative(case, location: ParameterLocation) -> bool:
    meta = case.meta
    component = meta.components.get(location) if meta is not None else None
    return component is not None and component.mode.is_negative


@schemathesis.hook
def before_call(context, case, kwargs):
    operation = case.operation.definition.raw.get("operationId")
    given = "generated"
    if operation in _SECURED and not _is_negative(case, ParameterLocation.HEADER):
        given = _give_credentials(case, operation)
    if operation in _PREFLIGHTS and os.environ.get("FUZZ_ALLOWED_ORIGIN"):
        if _pick(case, "origin", [True, False]):
            case.headers = {**(case.headers or {}), "Origin": os.environ["FUZZ_ALLOWED_ORIGIN"]}
    if (
        operation in ("submit_response", "create_upload_ticket")
        and isinstance(case.body, dict)
        and not _is_negative(case, ParameterLocation.BODY)
    ):
        _give_session(case)
    claim = None
    if operation == "register" and given in ("user", "researcher"):  # a researcher is a registered user too
        claim = _give_claim(case)
    _last.clear()
    _last.update(case=case.id, before=fingerprint(), given=given, claim=claim)


_claims_given = {"turn": 0}


def _give_claim(case) -> str | None:
    """Now and then a real visitor for a registered user to claim: an anonymous account's
    token in X-Anonymous-Token, or a claim code in the body (alone: one visitor a call)."""
    headers = case.headers or {}
    if headers.get("X-Anonymous-Token") in {c["token"] for c in _credentials()["claimable"]}:
        return "anonymous"  # a case sent again keeps what it was given
    if isinstance(case.body, dict) and case.body.get("claimCode") in _credentials()["codes"]:
        return "code"
    if _is_negative(case, ParameterLocation.HEADER) or _is_negative(case, ParameterLocation.BODY):
        return None
    if not (case.body is None or isinstance(case.body, dict)):
        return None
    # In turn, not by a hash: the case's headers hold this run's real tokens by now, which
    # differ from run to run, and each kind must be given at least once in every run.
    pick = ("anonymous", "code", None)[_claims_given["turn"] % 3]
    _claims_given["turn"] += 1
    if pick is None:
        return None
    headers = {name: value for name, value in headers.items() if name not in ("X-Guest-Key", "X-Anonymous-Token")}
    body = {name: value for name, value in (case.body or {}).items() if name != "claimCode"}
    if pick == "anonymous":
        headers["X-Anonymous-Token"] = _pick(case, "anonymous", _credentials()["claimable"])["token"]
    else:
        body["claimCode"] = _pick(case, "code", _credentials()["codes"])
    case.headers, case.body = headers, body
    return pick


def _give_credentials(case, operation: str) -> str:
    headers = case.headers or {}
    for kind, credential in _choices():  # a case sent again keeps what it was given
        if credential and headers.get("Authorization") == f"Bearer {credential.get('token')}":
            return kind
        if credential and "token" not in credential and headers.get("X-Guest-Key") == credential["key"]:
            return kind
    kind, credential = _pick(case, "credentials", _choices(operation))
    if kind == "generated":
        return kind
    headers = dict(case.headers or {})
    headers.pop("Authorization", None)
    if operation != "register":
        headers.pop("X-Guest-Key", None)
    if "token" in credential:
        headers["Authorization"] = f"Bearer {credential['token']}"
    else:
        headers["X-Guest-Key"] = credential["key"]
    case.headers = headers
    return kind


def _give_session(case) -> None:
    """A real sessionId: usually the caller's own, sometimes another visitor's."""
    headers = case.headers or {}
    sessions = [item["sessionId"] for group in ("guests", "users") for item in _credentials()[group]]
    own = [
        item["sessionId"]
        for group in ("guests", "users")
        for item in _credentials()[group]
        if item.get("key") == headers.get("X-Guest-Key")
        or f"Bearer {item.get('token')}" == headers.get("Authorization")
    ]
    pick = _pick(case, "session", ["own", "own", "other", "generated"])
    if pick == "own" and own:
        case.body = {**case.body, "sessionId": own[0]}
    elif pick == "other":
        case.body = {**case.body, "sessionId": _pick(case, "other", sessions)}


@schemathesis.hook
def after_call(context, case, response):
    _write(
        {
            "operation": case.operation.label,
            "status": response.status_code,
            "case": case.id,
            "credentials": _last.get("given"),
            "claim": _last.get("claim"),
            "appCheck": "X-Firebase-AppCheck" in response.request.headers,
        }
    )


def _write(entry: dict) -> None:
    log = os.environ.get("FUZZ_LOG")
    if log:
        with open(log, "a") as file:
            file.write(json.dumps(entry) + "\n")


@schemathesis.check
def refused_request_changes_nothing(ctx, response, case):
    """A refused request (4xx, 5xx) leaves every table as it was."""
    if _last.get("case") != case.id or response.status_code < 400:
        return None
    before = _last["before"]
    after = fingerprint()
    _write({"checked": case.id})
    changed = [table for table in TABLES if before[table] != after[table]]
    if changed:
        raise AssertionError(
            f"{case.operation.label} answered {response.status_code} but changed {', '.join(changed)}: "
            f"{ {table: (before[table][0], after[table][0]) for table in changed} } (row counts before, after)"
        )
    return None


@schemathesis.check
def generated_token_refused(ctx, response, case):
    """A bearer token the fuzzer made up is never accepted."""
    if _last.get("case") != case.id:
        return None
    if (
        _last["given"] == "generated"
        and "Authorization" in response.request.headers
        and 200 <= response.status_code < 300
    ):
        raise AssertionError(f"{case.operation.label} accepted a generated bearer token ({response.status_code})")
    return None
