"""Proof of owner (SPEC §5): create_upload_ticket over HTTP, and on_upload_finalized recording an
object under sessions/ only with a valid ticket (UPLOAD_TICKETS enforce, the default), tagging it
with a warning (monitor) or as before (off)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from devtools.clients import StorageEvents
from devtools.ports import free_port
from devtools.stack import BUCKET, FunctionsServer
from shared.visitors import upload_tickets
from shared.visitors.uploads import upload_id
from tests.support import Api, assert_error, new_guest_key
from tests.uploads_support import SIGNED, UploadsWorld, parse_time

# --- create_upload_ticket -----------------------------------------------------------------


def ask(api: Api, session_id: str, name: str = "photo.png", **credentials):
    return api.post("create_upload_ticket", {"sessionId": session_id, "name": name}, **credentials)


def test_the_owner_gets_a_ticket_for_one_name_in_its_session(api, stack):
    key = new_guest_key()
    session = api.post("create_session", {}, guest=key).json()
    before = datetime.now(UTC)

    answer = ask(api, session["sessionId"], "answer ü (1).pdf", guest=key)

    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert set(body) == {"ticket", "expiresAt", "path"}
    assert body["path"] == f"sessions/{session['sessionId']}/answer ü (1).pdf"
    expires = parse_time(body["expiresAt"])
    assert before + timedelta(seconds=3600 - 2) <= expires <= datetime.now(UTC) + timedelta(seconds=3600)
    assert upload_tickets.TICKET.fullmatch(body["ticket"])
    # The ticket is the one the key signs for this session, this name and that expiry, and no other.
    assert body["ticket"] == upload_tickets.sign(
        stack.upload_ticket_key.encode(), session["sessionId"], "answer ü (1).pdf", expires
    )
    assert api.post("api/create_upload_ticket", {"sessionId": session["sessionId"], "name": "b.png"}, guest=key).ok


def test_a_registered_user_gets_tickets_for_its_sessions_and_a_claimed_guests(api, auth_emulator):
    key = new_guest_key()
    guest_session = api.post("create_session", {}, guest=key).json()
    user = auth_emulator.new_user()
    own = api.post("create_session", {}, token=user.id_token).json()
    assert api.post("register", {}, token=user.id_token, guest=key).status_code in (200, 201)

    assert ask(api, own["sessionId"], token=user.id_token).status_code == 201
    assert ask(api, guest_session["sessionId"], token=user.id_token).status_code == 201  # claimed: the user's now
    assert_error(ask(api, guest_session["sessionId"], guest=key), 403, "permission_denied")


def test_another_visitors_session_is_403_and_an_unknown_one_404(api, auth_emulator):
    key, other = new_guest_key(), new_guest_key()
    session = api.post("create_session", {}, guest=key).json()
    api.post("create_session", {}, guest=other)

    assert_error(ask(api, session["sessionId"], guest=other), 403, "permission_denied")
    assert_error(ask(api, session["sessionId"], token=auth_emulator.new_user().id_token), 403, "permission_denied")
    assert_error(ask(api, str(uuid.uuid4()), guest=key), 404, "not_found")
    assert_error(ask(api, session["sessionId"]), 401, "unauthenticated")


def test_an_erased_session_is_404(api):
    key = new_guest_key()
    session = api.post("create_session", {}, guest=key).json()
    assert ask(api, session["sessionId"], guest=key).status_code == 201
    assert api.post("delete_my_data", {}, guest=key).json()["status"] == "done"

    assert_error(ask(api, session["sessionId"], guest=key), 404, "not_found")


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"sessionId": None, "name": "a.png"}, id="no-session"),
        pytest.param({"sessionId": "not-a-uuid", "name": "a.png"}, id="session-not-a-uuid"),
        pytest.param({}, id="no-name"),
        pytest.param({"name": ""}, id="empty-name"),
        pytest.param({"name": "a" * 201}, id="201-characters"),
        pytest.param({"name": "😀" * 101}, id="202-utf16-units"),
        pytest.param({"name": "dir/a.png"}, id="two-segments"),
        pytest.param({"name": "."}, id="dot"),
        pytest.param({"name": ".."}, id="dot-dot"),
        pytest.param({"name": "a\nb.png"}, id="newline"),
        pytest.param({"name": 42}, id="not-text"),
        pytest.param({"name": "a.png", "size": 1}, id="unknown-field"),
    ],
)
def test_a_bad_body_is_400(api, body):
    key = new_guest_key()
    session = api.post("create_session", {}, guest=key).json()
    body = {key: value for key, value in {"sessionId": session["sessionId"], **body}.items() if value is not None}

    assert_error(api.post("create_upload_ticket", body, guest=key), 400, "invalid_argument")


def test_two_hundred_characters_is_a_name(api):
    key = new_guest_key()
    session = api.post("create_session", {}, guest=key).json()
    assert ask(api, session["sessionId"], "a" * 200, guest=key).status_code == 201
    assert ask(api, session["sessionId"], "é" * 200, guest=key).status_code == 201


# --- on_upload_finalized with UPLOAD_TICKETS=enforce (the default) ----------------------------


def assert_deleted_and_not_recorded(world: UploadsWorld, item: dict) -> None:
    response = world.deliver(item)
    assert 200 <= response.status_code < 300, response.text  # acknowledged: never retried
    assert world.stored(item["name"]) is None
    assert world.uploads() == {}
    assert world.visitors() == {}


def assert_refusal_logged(stack, before: int, name: str) -> None:
    logged = (stack.workdir / "functions.log").read_bytes()[before:].decode()
    assert "upload refused" in logged and name in logged, logged[-2000:]


def log_size(stack) -> int:
    return (stack.workdir / "functions.log").stat().st_size


def test_a_valid_ticket_is_tagged_and_recorded(uploads_world):
    world = uploads_world
    session = world.new_session()
    item = world.upload(session["sessionId"], "answer.png", metadata={"k": "v"})
    ticket = item["metadata"][upload_tickets.METADATA_KEY]

    assert world.deliver(item).ok

    metadata = world.stored(item["name"])["metadata"]
    assert metadata["visitorNumber"] == "1" and metadata["sessionId"] == session["sessionId"]
    assert metadata["k"] == "v" and metadata[upload_tickets.METADATA_KEY] == ticket  # its keys are kept
    assert list(world.uploads()) == [upload_id(BUCKET, item["name"], int(item["generation"]))]
    assert world.visitors()["1"]["uploadCount"] == 1


def test_an_upload_without_a_ticket_is_deleted_and_not_recorded(uploads_world, stack):
    world = uploads_world
    session = world.new_session()
    before = log_size(stack)
    item = world.upload(session["sessionId"], "no-ticket.png", ticket=False)

    assert_deleted_and_not_recorded(world, item)
    assert_refusal_logged(stack, before, item["name"])


def test_an_upload_with_another_sessions_ticket_is_deleted_and_not_recorded(uploads_world, stack):
    """The attack of the issue: a stranger who knows a sessionId uploads into it with a ticket of
    its own session."""
    world = uploads_world
    victim = world.new_session()
    attacker = world.new_session()
    own_ticket = world.ticket(attacker["sessionId"], "photo.png")
    before = log_size(stack)
    item = world.upload(victim["sessionId"], "photo.png", ticket=own_ticket)

    assert_deleted_and_not_recorded(world, item)
    assert_refusal_logged(stack, before, item["name"])


def test_an_upload_with_a_ticket_for_another_name_is_deleted_and_not_recorded(uploads_world):
    world = uploads_world
    session = world.new_session()
    ticket = world.ticket(session["sessionId"], "a.png")

    assert_deleted_and_not_recorded(world, world.upload(session["sessionId"], "b.png", ticket=ticket))
    # The same ticket on its own name is recorded.
    assert world.deliver(world.upload(session["sessionId"], "a.png", ticket=ticket)).ok
    assert len(world.uploads()) == 1


def test_an_upload_created_after_its_ticket_expired_is_deleted_and_not_recorded(uploads_world):
    world = uploads_world
    session = world.new_session()
    expired = world.signed_ticket(session["sessionId"], "late.png", datetime.now(UTC) - timedelta(seconds=2))

    assert_deleted_and_not_recorded(world, world.upload(session["sessionId"], "late.png", ticket=expired))


def test_a_forged_or_malformed_ticket_is_deleted_and_not_recorded(uploads_world):
    world = uploads_world
    session = world.new_session()
    valid = world.ticket(session["sessionId"], "a.png")
    forged = upload_tickets.sign(b"not the key" * 4, session["sessionId"], "a.png", datetime.now(UTC) + timedelta(1))
    later = valid.split(".")[0] + "." + str(int(valid.split(".")[1]) + 86400) + "." + valid.split(".")[2]
    for ticket in (forged, later, "v1.1.x", "x" * 57, valid.upper()):
        assert_deleted_and_not_recorded(world, world.upload(session["sessionId"], "a.png", ticket=ticket))


def test_an_object_of_an_unknown_session_is_deleted_even_with_a_signed_ticket(uploads_world, stack):
    world = uploads_world
    before = log_size(stack)
    item = world.upload(str(uuid.uuid4()), "a.png", ticket=SIGNED)

    assert_deleted_and_not_recorded(world, item)
    assert_refusal_logged(stack, before, str(item["name"]).split("/")[1])


def test_objects_under_sessions_that_no_ticket_names_are_deleted(uploads_world):
    """Under sessions/ every object needs a ticket: another spelling of a session id, a deeper path,
    the folder's own name; objects outside sessions/ are left alone."""
    world = uploads_world
    session = world.new_session()
    sid = session["sessionId"]
    # sessions/{sid} first: the emulator keeps objects as files, and this one would be a folder's name.
    for name in (f"sessions/{sid}", f"sessions/{sid.upper()}/a.png", f"sessions/{sid}/dir/a.png", "sessions/x/a"):
        item = world.upload(sid, name=name, ticket=world.ticket(sid, "a.png"))
        assert_deleted_and_not_recorded(world, item)
    outside = world.upload(sid, name=f"avatars/{sid}/a.png", metadata={"k": "v"})
    assert world.deliver(outside).ok
    assert world.stored(outside["name"])["metadata"] == {"k": "v"}


# --- monitor and off: tagged as before -----------------------------------------------------


@pytest.fixture
def served_with(stack, tmp_path, api, db, firestore, bucket):
    """start(**env): a functions server with these settings over the stack's stores, and a world
    whose events go to it."""
    started: list[FunctionsServer] = []

    def start(**settings: str) -> tuple[UploadsWorld, FunctionsServer]:
        env = {**stack.env(), **settings}
        env = {name: value for name, value in env.items() if value != ""}
        server = FunctionsServer(free_port(), env, tmp_path / f"functions-{len(started)}.log").start()
        started.append(server)
        events = StorageEvents(f"{server.url}/on_upload_finalized")
        return UploadsWorld(api, db, firestore, bucket, events, ticket_key=stack.upload_ticket_key), server

    yield start
    for server in started:
        server.stop()


def test_monitor_tags_and_records_an_upload_without_a_ticket_and_warns(served_with):
    world, server = served_with(UPLOAD_TICKETS="monitor")
    session = world.new_session()
    item = world.upload(session["sessionId"], "no-ticket.png", ticket=False)
    other = world.upload(session["sessionId"], "with-ticket.png")

    assert world.deliver(item).ok and world.deliver(other).ok

    assert world.stored(item["name"])["metadata"]["visitorNumber"] == "1"
    assert len(world.uploads()) == 2
    logged = server.log_path.read_text()
    assert f"gs://{BUCKET}/{item['name']} has no valid upload ticket" in logged
    assert "UPLOAD_TICKETS=monitor" in logged and '"severity": "WARNING"' in logged
    assert other["name"] + " has no valid" not in logged


def test_off_tags_and_records_an_upload_without_a_ticket(served_with):
    world, server = served_with(UPLOAD_TICKETS="off", UPLOAD_TICKET_KEY="")
    session = world.new_session()
    item = world.upload(session["sessionId"], "old.png", ticket=False)

    assert world.deliver(item).ok

    assert world.stored(item["name"])["metadata"]["visitorNumber"] == "1"
    assert len(world.uploads()) == 1
    assert "upload ticket" not in server.log_path.read_text()


def test_enforce_without_a_key_fails_with_one_line_and_the_event_is_retried(served_with):
    world, server = served_with(UPLOAD_TICKET_KEY="")
    session = world.new_session()
    item = world.upload(session["sessionId"], "a.png", ticket=SIGNED)

    assert world.deliver(item).status_code >= 500  # redelivered once the key is set
    assert world.stored(item["name"]) is not None and world.uploads() == {}
    assert "UPLOAD_TICKET_KEY is not set" in server.log_path.read_text()


def test_a_recorded_upload_redelivered_after_the_key_changed_is_left_as_it_is(uploads_world, served_with):
    """Its ticket verified when it was recorded: a redelivery (Eventarc's, or make dev's bridge after a
    restart, which makes a new key) neither deletes it nor records it again."""
    world = uploads_world
    item = world.upload(world.new_session()["sessionId"], "kept.png")
    assert world.deliver(item).ok
    rekeyed, server = served_with(UPLOAD_TICKET_KEY="another key, as long as a real one is long")

    assert rekeyed.deliver(item).ok

    assert world.stored(item["name"]) is not None
    assert len(world.uploads()) == 1 and world.visitors()["1"]["uploadCount"] == 1
    assert "recorded before; left as it is" in server.log_path.read_text()
    # Not recorded before: refused and deleted.
    fresh = world.upload(item["name"].split("/")[1], "fresh.png")
    assert rekeyed.deliver(fresh).ok and world.stored(fresh["name"]) is None
