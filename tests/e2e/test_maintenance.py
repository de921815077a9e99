"""run_maintenance (SPEC §12): retention through the erasure ledger, pending erasures resumed,
expired guest-creation windows forgotten; called only by the scheduler's identity.

How the test stands in for Cloud Run's IAM: deployed, run_maintenance is private
(`--no-allow-unauthenticated`) and Cloud Run refuses a call without an OIDC token of a principal
holding roles/run.invoker before any code runs. There is no Cloud Run here, so the function is
served with MAINTENANCE_INVOKER (the scheduler's service account) and MAINTENANCE_AUDIENCE (its
URL), which make the function verify the token itself: google-auth's real verification of a
Google ID token (RS256 signature against the certificates at MAINTENANCE_CERTS_URL, expiry,
issuer, audience) and its verified email. The certificates come from a local server with a key
made here (Google's are out of reach), as tests/security does for Firebase ID tokens; the tokens
are signed with that key the way Google signs the ones Cloud Scheduler sends.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from google.auth import crypt, jwt
from sqlalchemy import text

from devtools.google_endpoints import GoogleEndpoints, certificate, new_key, pem
from devtools.ports import free_port
from devtools.stack import FunctionsServer
from shared.rights import erasure
from shared.web.auth import hash_guest_key
from tests.contract.test_openapi import conforms
from tests.support import assert_error, new_guest_key, rows, scalar
from tests.uploads_support import UploadsWorld

SCHEDULER = "visitors-scheduler@demo-visitors.iam.gserviceaccount.com"
KEY = new_key()
KID = "google-key-1"
DAYS = 30


def oidc_token(audience: str, email: str = SCHEDULER, key=KEY, kid: str = KID, **overrides) -> str:
    """A Google-signed ID token as Cloud Scheduler sends it (--oidc-service-account-email)."""
    now = int(time.time())
    claims = {
        "iss": "https://accounts.google.com",
        "aud": audience,
        "azp": "1234567890",
        "sub": "1234567890",
        "email": email,
        "email_verified": True,
        "iat": now,
        "exp": now + 3600,
    }
    claims.update(overrides)
    return jwt.encode(crypt.RSASigner.from_string(pem(key), kid), claims).decode()


@pytest.fixture(scope="module")
def google():
    with GoogleEndpoints({KID: certificate(KEY)}) as endpoints:
        yield endpoints


@pytest.fixture(scope="module")
def maintenance(stack, google, tmp_path_factory):
    """The functions served as run_maintenance is deployed: only SCHEDULER's token is let through."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/run_maintenance"
    env = {
        **stack.env(),
        "GUEST_RETENTION_DAYS": str(DAYS),
        "MAINTENANCE_INVOKER": SCHEDULER,
        "MAINTENANCE_AUDIENCE": url,
        "MAINTENANCE_CERTS_URL": f"{google.url}/certs",
    }
    server = FunctionsServer(port, env, tmp_path_factory.mktemp("maintenance") / "functions.log").start()
    server.audience = url
    yield server
    server.stop()


def call(server, token: str | None = None) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.post(server.audience, headers=headers, timeout=60)


def run(server) -> dict:
    """One run as the scheduler calls it; its answer, checked against openapi.yaml."""
    return conforms(call(server, oidc_token(server.audience)), 200)


def age(db, key: str, days: int = DAYS + 10) -> None:
    """Move a guest and all of its sessions `days` days into the past."""
    with db.begin() as conn:
        conn.execute(
            text(
                "UPDATE sessions SET created_at = created_at - CAST(:d AS integer) * interval '1 day' "
                "WHERE guest_id = (SELECT id FROM guests WHERE key_hash = :h)"
            ),
            {"d": days, "h": hash_guest_key(key)},
        )
        conn.execute(
            text(
                "UPDATE guests SET created_at = created_at - CAST(:d AS integer) * interval '1 day' WHERE key_hash = :h"
            ),
            {"d": days, "h": hash_guest_key(key)},
        )


def guest(api, sessions: int = 1) -> tuple[str, list[dict]]:
    key = new_guest_key()
    made = [api.post("create_session", {}, guest=key).json() for _ in range(sessions)]
    return key, made


def test_refuses_callers_without_the_schedulers_identity(maintenance, db):
    audience = maintenance.audience
    assert_error(call(maintenance), 401, "unauthenticated")
    assert_error(call(maintenance, "not-a-token"), 401, "unauthenticated")
    assert_error(call(maintenance, oidc_token("https://elsewhere.example/run_maintenance")), 401, "unauthenticated")
    assert_error(
        call(maintenance, oidc_token(audience, exp=int(time.time()) - 600, iat=int(time.time()) - 4200)),
        401,
        "unauthenticated",
    )
    assert_error(call(maintenance, oidc_token(audience, key=new_key())), 401, "unauthenticated")  # forged
    assert_error(call(maintenance, oidc_token(audience, iss="https://evil.example")), 401, "unauthenticated")
    assert_error(
        call(maintenance, oidc_token(audience, email="someone@demo-visitors.iam.gserviceaccount.com")),
        403,
        "permission_denied",
    )
    assert_error(call(maintenance, oidc_token(audience, email_verified=False)), 403, "permission_denied")
    get = requests.get(audience, headers={"Authorization": f"Bearer {oidc_token(audience)}"}, timeout=30)
    assert_error(get, 405, "method_not_allowed")
    assert scalar(db, "SELECT count(*) FROM erasures") == 0

    assert run(maintenance) == {
        "erasures": {"completed": 0, "stillPending": 0},
        "retention": {"days": DAYS, "erased": 0, "pending": 0, "kept": 0, "more": False},
        "guestLimit": {"expiredAddresses": 0},
    }


def test_retention_erases_exactly_the_empty_old_unclaimed_guests_through_the_ledger(
    maintenance, api, db, auth_emulator, firestore, bucket, storage_events
):
    world = UploadsWorld(api, db, firestore, bucket, storage_events)
    empty = [guest(api, sessions=n) for n in (1, 2, 1)]
    with_response = guest(api)
    api.post("submit_response", {"sessionId": with_response[1][0]["sessionId"], "data": 1}, guest=with_response[0])
    with_upload = guest(api)
    world.owners[with_upload[1][0]["sessionId"]] = with_upload[0]  # its ticket from create_upload_ticket
    assert world.deliver(world.upload(with_upload[1][0]["sessionId"])).status_code < 300
    claimed = guest(api)
    assert api.post("register", {}, guest=claimed[0], token=auth_emulator.new_user().id_token).status_code == 201
    recent = guest(api)
    old_and_recent = guest(api, sessions=2)
    for key, _ in [*empty, with_response, with_upload, claimed, old_and_recent]:
        age(db, key)
    with db.begin() as conn:  # one of its sessions is from yesterday
        conn.execute(
            text("UPDATE sessions SET created_at = now() - interval '1 day' WHERE id = CAST(:s AS uuid)"),
            {"s": old_and_recent[1][1]["sessionId"]},
        )
    kept_sessions = {
        s["sessionId"] for _, made in (with_response, with_upload, claimed, recent, old_and_recent) for s in made
    }
    erased_numbers = sorted(made[0]["visitorNumber"] for _, made in empty)

    # Its upload is a row of PostgreSQL's `uploads` (SPEC §16), which retention asks: without the
    # Firestore documents the guest is kept all the same, and never even picked (kept: 0).
    assert len(world.rows()) == 1
    for recorded in firestore.collection("uploads").stream():
        recorded.reference.delete()

    answer = run(maintenance)

    assert answer["retention"] == {"days": DAYS, "erased": 3, "pending": 0, "kept": 0, "more": False}
    ledger = rows(
        db,
        "SELECT visitor_number, requested_by, sessions, responses, uploads, objects, completed_at "
        "FROM erasures ORDER BY visitor_number",
    )
    assert [(r.visitor_number, r.requested_by, r.sessions, r.responses, r.uploads, r.objects) for r in ledger] == [
        (n, "retention", s, 0, 0, 0) for n, s in zip(erased_numbers, (1, 2, 1))
    ]
    assert all(r.completed_at is not None for r in ledger)
    erased_sessions = {s["sessionId"] for _, made in empty for s in made}
    assert {str(r.session_id) for r in rows(db, "SELECT session_id FROM erased_sessions")} == erased_sessions
    assert {str(r.id) for r in rows(db, "SELECT id FROM sessions")} == kept_sessions
    assert scalar(db, "SELECT count(*) FROM guests") == 5
    assert len(world.rows()) == 1 and world.stored(next(iter(world.rows().values()))["name"])  # kept, and its file

    # A number is retired: the erased guests' keys start new visitors with new numbers.
    again = api.post("create_session", {}, guest=empty[0][0]).json()
    assert again["visitorNumber"] not in erased_numbers
    # Running it again erases nothing more.
    assert run(maintenance)["retention"] == {"days": DAYS, "erased": 0, "pending": 0, "kept": 0, "more": False}
    assert scalar(db, "SELECT count(*) FROM erasures") == 3


def test_two_overlapping_runs_do_the_work_once(maintenance, api, db, firestore, bucket):
    keys = [guest(api)[0] for _ in range(12)]
    for key in keys:
        age(db, key)
    with db.begin() as conn:  # and two addresses whose guest-creation window is over
        conn.exec_driver_sql(
            "INSERT INTO guest_limits (address_hash, created_at, last_at) SELECT sha256(convert_to(a, 'UTF8')), "
            "ARRAY[now() - interval '2 hours'], now() - interval '2 hours' FROM unnest(ARRAY['a', 'b']) AS a"
        )

    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda _: run(maintenance), range(2)))

    assert sum(a["retention"]["erased"] for a in answers) == 12
    assert sum(a["guestLimit"]["expiredAddresses"] for a in answers) == 2
    assert scalar(db, "SELECT count(*) FROM erasures WHERE requested_by = 'retention'") == 12
    assert scalar(db, "SELECT count(DISTINCT visitor_number) FROM erasures") == 12
    assert scalar(db, "SELECT count(*) FROM erasures WHERE completed_at IS NULL") == 0
    assert scalar(db, "SELECT count(*) FROM guests") == 0
    # Only the window of the address the guests were made from (this hour) is left.
    assert scalar(db, "SELECT count(*) FROM guest_limits WHERE last_at < now() - interval '1 hour'") == 0
    assert scalar(db, "SELECT count(*) FROM guest_limits") == 1


def test_a_pending_erasure_is_resumed(maintenance, api, db, firestore, bucket):
    """A withdrawal whose Firestore and Storage parts did not run (as after an outage) is finished."""
    key, _ = guest(api)
    erased = erasure.erase_rows(db, erasure.Target(key_hash=hash_guest_key(key)), "visitor")
    assert scalar(db, "SELECT count(*) FROM erasures WHERE completed_at IS NULL") == 1

    answer = run(maintenance)

    assert answer["erasures"] == {"completed": 1, "stillPending": 0}
    assert rows(db, "SELECT id FROM erasures WHERE completed_at IS NOT NULL") == [(erased.erasure_id,)]
    assert run(maintenance)["erasures"] == {"completed": 0, "stillPending": 0}


# --- The daily audit (run_maintenance?task=audit, SPEC §16) -------------------------------


def call_audit(server, token: str, query: str = "task=audit") -> requests.Response:
    return requests.post(f"{server.audience}?{query}", headers={"Authorization": f"Bearer {token}"}, timeout=60)


def test_the_daily_job_runs_the_audit_without_repair_and_answers_its_figures(maintenance, uploads_world):
    world = uploads_world
    session = world.new_session()
    for name in ("a.png", "b.png"):
        assert world.deliver(world.upload(session["sessionId"], name)).ok
    counter = world.firestore.collection("visitors").document(str(session["visitorNumber"]))
    counter.update({"uploadCount": 5})
    world.upload(session["sessionId"], "in-flight.png")  # younger than the default --min-age: skipped

    answer = conforms(call_audit(maintenance, oidc_token(maintenance.audience)), 200)["audit"]

    assert answer["disagreements"] == 1 and answer["found"]["counter_mismatch"] == 1
    assert answer["checked"]["objects"] == 0  # all three are younger than 600 s
    assert counter.get().to_dict()["uploadCount"] == 5  # reported, not mended
    assert_error(call_audit(maintenance, oidc_token(maintenance.audience), "task=repair"), 400, "invalid_argument")
    assert call_audit(maintenance, "not-a-token").status_code == 401
