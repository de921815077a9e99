"""Withdrawal over HTTP (SPEC §11): delete_my_data and erase_visitor against the
real stack - PostgreSQL, the Auth, Firestore and Storage emulators, uploads
tagged and recorded by on_upload_finalized - and what every store holds after."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from devtools.stack import BUCKET
from tests.erasure_support import Traces, everything_left
from tests.support import assert_error, new_guest_key, register, rows, scalar
from tests.uploads_support import UploadsWorld


def used_site(
    world: UploadsWorld,
    traces: Traces,
    *,
    guest: str | None = None,
    token: str | None = None,
    sessions: int = 2,
    responses: int = 3,
    uploads: int = 2,
) -> list[dict]:
    """A visitor that used the site: sessions with responses and uploaded files (tagged
    and recorded by the trigger), every trace of it noted in `traces`."""
    made = []
    for s in range(sessions):
        answer = world.api.post(
            "create_session", {"experimentId": "study-1", "metadata": {"s": s}}, guest=guest, token=token
        )
        assert answer.status_code == 201, answer.text
        session = answer.json()
        traces.add_session(session)
        for level in range(responses):
            stored = world.api.post(
                "submit_response",
                {"sessionId": session["sessionId"], "level": level, "data": {"answer": level}},
                guest=guest,
                token=token,
            )
            assert stored.status_code == 201, stored.text
        for u in range(uploads):
            item = world.upload(session["sessionId"], f"file-{u}.png")
            assert world.deliver(item).status_code < 300
        made.append(session)
    return made


def withdraw(api, **credentials):
    return api.post("delete_my_data", {}, **credentials)


def ledger(db) -> list:
    return rows(db, "SELECT * FROM erasures ORDER BY requested_at")


def assert_ledger_holds_counts_and_times_only(
    row, *, number, merged, sessions, responses, uploads, objects, requested_by="visitor"
):
    values = dict(row._mapping)
    assert set(values) == {
        "id",
        "visitor_number",
        "merged_numbers",
        "requested_by",
        "requested_at",
        "sql_erased_at",
        "firestore_erased_at",
        "storage_erased_at",
        "completed_at",
        "sessions",
        "responses",
        "uploads",
        "objects",
        "attempts",
        "last_attempt_at",
    }
    assert (values["visitor_number"], sorted(values["merged_numbers"]), values["requested_by"]) == (
        number,
        sorted(merged),
        requested_by,
    )
    assert (values["sessions"], values["responses"], values["uploads"], values["objects"]) == (
        sessions,
        responses,
        uploads,
        objects,
    )
    now = datetime.now(UTC)
    assert values["requested_at"] <= values["sql_erased_at"] <= values["completed_at"] <= now
    assert values["firestore_erased_at"] <= values["completed_at"]
    assert values["storage_erased_at"] <= values["completed_at"]


def test_a_guest_withdraws_and_nothing_of_it_is_left_in_any_store(uploads_world, stack, storage_client):
    world = uploads_world
    key, bystander_key = new_guest_key(), new_guest_key()
    traces, bystander = Traces(), Traces()
    sessions = used_site(world, traces, guest=key)
    used_site(world, bystander, guest=bystander_key, sessions=1)
    traces.ids.add(sessions[0]["guestId"])
    # Its count is the rows of `uploads` that the erasure removes, not the Firestore documents it
    # finds (SPEC §16): one document gone by hand does not change it.
    mine = {i for i, row in world.rows().items() if row["visitor_number"] == sessions[0]["visitorNumber"]}
    assert len(mine) == 4
    stray = next(d for d in world.firestore.collection("uploads").stream() if d.id in mine)
    stray.reference.delete()
    before = {
        "sessions": scalar(world.db, "SELECT count(*) FROM sessions"),
        "uploads": len(world.uploads()),
        "rows": len(world.rows()),
    }

    answer = withdraw(world.api, guest=key)

    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body == {
        "erasureId": body["erasureId"],
        "status": "done",
        "sessions": 2,
        "responses": 6,
        "uploads": 4,
        "objects": 4,
    }
    assert uuid.UUID(body["erasureId"])
    assert everything_left(world.db, stack.firestore, storage_client, BUCKET, traces) == []
    # The bystander's data is all there.
    assert scalar(world.db, "SELECT count(*) FROM sessions") == before["sessions"] - 2
    assert len(world.uploads()) == before["uploads"] - 3
    assert len(world.rows()) == before["rows"] - 4 and not mine & set(world.rows())
    assert len(everything_left(world.db, stack.firestore, storage_client, BUCKET, bystander)) > 0
    assert set(world.visitors()) == {str(n) for n in bystander.numbers}
    # The ledger: counts and times, and a tombstone per session.
    (row,) = ledger(world.db)
    assert str(row.id) == body["erasureId"]
    assert_ledger_holds_counts_and_times_only(
        row, number=sessions[0]["visitorNumber"], merged=[], sessions=2, responses=6, uploads=4, objects=4
    )
    assert {str(r.session_id) for r in rows(world.db, "SELECT session_id FROM erased_sessions")} == traces.session_ids


def test_a_registered_user_who_claimed_two_guests_and_holds_a_merge_withdraws_everything(
    uploads_world, stack, storage_client, auth_emulator
):
    world = uploads_world
    user = auth_emulator.new_user()
    traces = Traces()
    own = used_site(world, traces, token=user.id_token, sessions=1)
    number = own[0]["visitorNumber"]
    first_key, second_key = new_guest_key(), new_guest_key()
    first = used_site(world, traces, guest=first_key, sessions=2)
    second = used_site(world, traces, guest=second_key, sessions=1)
    traces.ids |= {user.uid, user.email}
    for key, guest_sessions in ((first_key, first), (second_key, second)):
        claimed = register(world.api, user, key)
        assert claimed.status_code == 200, claimed.text
        assert claimed.json()["mergedFromVisitorNumber"] == guest_sessions[0]["visitorNumber"]
    merged = {first[0]["visitorNumber"], second[0]["visitorNumber"]}
    assert {r.from_number for r in rows(world.db, "SELECT from_number FROM visitor_merges")} == merged
    bystander = Traces()
    used_site(world, bystander, guest=new_guest_key(), sessions=1, uploads=1)

    answer = withdraw(world.api, token=user.id_token)

    assert answer.status_code == 202, answer.text
    assert {k: v for k, v in answer.json().items() if k != "erasureId"} == {
        "status": "done",
        "sessions": 4,
        "responses": 12,
        "uploads": 8,
        "objects": 8,
    }
    assert everything_left(world.db, stack.firestore, storage_client, BUCKET, traces) == []
    assert scalar(world.db, "SELECT count(*) FROM users") == 0
    assert scalar(world.db, "SELECT count(*) FROM guests") == 1  # the bystander
    assert set(world.visitors()) == {str(n) for n in bystander.numbers}
    (row,) = ledger(world.db)
    assert_ledger_holds_counts_and_times_only(
        row, number=number, merged=merged, sessions=4, responses=12, uploads=8, objects=8
    )


def test_a_user_who_claimed_anonymous_accounts_withdraws_them_too_and_nothing_else(
    uploads_world, stack, storage_client, auth_emulator
):
    """SPEC §13 with §11: an anonymous account's sessions move to the account that claims it
    (X-Anonymous-Token, or its claim code), so they are that account's to withdraw; the
    claimed uid itself cannot withdraw them (guest_claimed). A bystander - another user with
    an anonymous account it claimed - keeps everything."""
    world = uploads_world
    user, anonymous, coded = auth_emulator.new_user(), auth_emulator.anonymous(), auth_emulator.anonymous()
    traces, bystander = Traces(), Traces()
    own = used_site(world, traces, token=user.id_token, sessions=1, uploads=1)
    from_anonymous = used_site(world, traces, token=anonymous.id_token, sessions=2, uploads=1)
    used_site(world, traces, token=coded.id_token, sessions=1, uploads=1)
    traces.ids |= {user.uid, user.email, anonymous.uid, coded.uid}
    claimed = world.api.post("register", {}, token=user.id_token, headers={"X-Anonymous-Token": anonymous.id_token})
    assert claimed.json()["mergedFromVisitorNumber"] == from_anonymous[0]["visitorNumber"], claimed.text
    code = world.api.post("create_claim_code", {}, token=coded.id_token).json()["claimCode"]
    assert world.api.post("register", {"claimCode": code}, token=user.id_token).json()["migratedSessions"] == 1
    other, other_anonymous = auth_emulator.new_user(), auth_emulator.anonymous()
    used_site(world, bystander, token=other_anonymous.id_token, sessions=1, uploads=1)
    assert (
        world.api.post(
            "register", {}, token=other.id_token, headers={"X-Anonymous-Token": other_anonymous.id_token}
        ).status_code
        == 201
    )
    bystander_rows = {
        table: rows(
            world.db, f"SELECT * FROM {table} WHERE {column} IN (:a, :b) ORDER BY 1", a=other.uid, b=other_anonymous.uid
        )
        for table, column in (("users", "id"), ("sessions", "user_id"))
    }
    assert len(bystander_rows["users"]) == 2 and len(bystander_rows["sessions"]) == 1

    # The claimed uid's data is the claimer's: it cannot withdraw it.
    before = rows(world.db, "SELECT id, user_id FROM sessions ORDER BY id")
    assert_error(withdraw(world.api, token=anonymous.id_token), 403, "guest_claimed")
    assert rows(world.db, "SELECT id, user_id FROM sessions ORDER BY id") == before and ledger(world.db) == []

    answer = withdraw(world.api, token=user.id_token)

    assert answer.status_code == 202, answer.text
    assert {k: v for k, v in answer.json().items() if k != "erasureId"} == {
        "status": "done",
        "sessions": 4,
        "responses": 12,
        "uploads": 4,
        "objects": 4,
    }
    assert everything_left(world.db, stack.firestore, storage_client, BUCKET, traces) == []
    for uid in (user.uid, anonymous.uid, coded.uid):
        assert scalar(world.db, "SELECT count(*) FROM users WHERE id = :u OR claimed_by = :u", u=uid) == 0
    assert scalar(world.db, "SELECT count(*) FROM claim_codes") == 0
    assert scalar(world.db, "SELECT count(*) FROM claim_code_attempts WHERE user_id = :u", u=user.uid) == 0
    # Exactly the bystander is left, as it was.
    assert {
        table: rows(
            world.db, f"SELECT * FROM {table} WHERE {column} IN (:a, :b) ORDER BY 1", a=other.uid, b=other_anonymous.uid
        )
        for table, column in (("users", "id"), ("sessions", "user_id"))
    } == bystander_rows
    assert scalar(world.db, "SELECT count(*) FROM users") == 2
    assert set(world.visitors()) == {str(n) for n in bystander.numbers}
    (row,) = ledger(world.db)
    merged = traces.numbers - {own[0]["visitorNumber"]}  # both anonymous accounts folded into the user
    assert_ledger_holds_counts_and_times_only(
        row, number=own[0]["visitorNumber"], merged=merged, sessions=4, responses=12, uploads=4, objects=4
    )


def test_after_withdrawal_the_erased_session_id_is_never_created_again(api, db, firestore, bucket):
    key = new_guest_key()
    session = api.post("create_session", {}, guest=key).json()
    assert withdraw(api, guest=key).status_code == 202
    numbers = scalar(db, "SELECT last_value FROM visitor_number_seq")

    again = api.post("create_session", {"sessionId": session["sessionId"]}, guest=key)
    other = api.post("create_session", {"sessionId": session["sessionId"]}, guest=new_guest_key())

    for refused in (again, other):
        error = assert_error(refused, 409, "conflict")
        assert error["message"] == "This sessionId is already in use; send a new one (or none)."
    assert scalar(db, "SELECT count(*) FROM sessions") == 0
    assert scalar(db, "SELECT count(*) FROM guests") == 0  # no visitor made, no number taken
    assert scalar(db, "SELECT last_value FROM visitor_number_seq") == numbers


def test_the_key_of_a_withdrawn_guest_opens_nothing_and_starts_a_new_visitor(api, db, firestore, bucket):
    key = new_guest_key()
    first = api.post("create_session", {}, guest=key).json()
    assert withdraw(api, guest=key).status_code == 202

    assert_error(api.get("get_visitor", guest=key), 404, "not_found")
    assert_error(withdraw(api, guest=key), 404, "not_found")
    assert_error(api.post("submit_response", {"sessionId": first["sessionId"], "data": 1}, guest=key), 404, "not_found")
    later = api.post("create_session", {}, guest=key)
    assert later.status_code == 201
    assert later.json()["visitorNumber"] == first["visitorNumber"] + 1  # numbers are never reused
    assert later.json()["guestId"] != first["guestId"]


def test_withdrawal_needs_something_stored_and_credentials(api, db, auth_emulator, firestore, bucket):
    assert_error(withdraw(api, guest=new_guest_key()), 404, "not_found")
    assert_error(withdraw(api, token=auth_emulator.new_user().id_token), 404, "not_found")
    error = assert_error(withdraw(api), 401, "unauthenticated")
    assert "X-Guest-Key" in error["message"]
    assert_error(withdraw(api, token="not-a-token"), 401, "unauthenticated")
    assert_error(api.get("delete_my_data", guest=new_guest_key()), 405, "method_not_allowed")
    assert scalar(db, "SELECT count(*) FROM erasures") == 0


def test_a_claimed_guest_key_cannot_withdraw_the_users_data(api, db, auth_emulator, firestore, bucket):
    key = new_guest_key()
    api.post("create_session", {}, guest=key)
    user = auth_emulator.new_user()
    assert register(api, user, key).status_code == 201

    assert_error(withdraw(api, guest=key), 403, "guest_claimed")

    assert scalar(db, "SELECT count(*) FROM sessions WHERE user_id = :u", u=user.uid) == 1
    assert scalar(db, "SELECT count(*) FROM erasures") == 0


def test_an_anonymous_firebase_user_withdraws(api, db, auth_emulator, firestore, bucket):
    anonymous = auth_emulator.sign_up()
    session = api.post("create_session", {}, token=anonymous.id_token).json()
    api.post("submit_response", {"sessionId": session["sessionId"], "data": "x"}, token=anonymous.id_token)

    answer = withdraw(api, token=anonymous.id_token)

    assert answer.status_code == 202, answer.text
    assert (answer.json()["sessions"], answer.json()["responses"]) == (1, 1)
    assert scalar(db, "SELECT count(*) FROM users") == 0
    assert scalar(db, "SELECT count(*) FROM responses") == 0


# --- Uploads that finish after the erasure ------------------------------------


def test_an_upload_finalized_after_the_erasure_leaves_no_object_and_no_document(uploads_world, stack, storage_client):
    world = uploads_world
    key = new_guest_key()
    session = world.new_session(guest=key)
    early = world.upload(session["sessionId"], "early.png")
    late_ticket = world.ticket(session["sessionId"], "late.png")  # asked for before the erasure
    assert withdraw(world.api, guest=key).json()["status"] == "done"

    late = world.upload(session["sessionId"], "late.png", ticket=late_ticket)  # finished after the erasure
    first = world.deliver(late)
    again = world.deliver(late)  # delivered again, as Eventarc may
    stale = world.deliver(early)  # the early object's event, delivered late

    assert all(200 <= r.status_code < 300 for r in (first, again, stale)), [r.text for r in (first, again, stale)]
    assert world.stored(late["name"]) is None
    assert world.stored(early["name"]) is None
    assert world.uploads() == {}
    assert world.visitors() == {}
    traces = Traces()
    traces.add_session(session)
    assert everything_left(world.db, stack.firestore, storage_client, BUCKET, traces) == []


# --- erase_visitor -------------------------------------------------------------


def test_a_researcher_erases_a_visitor_by_a_merged_number(uploads_world, stack, storage_client, auth_emulator):
    world = uploads_world
    user = auth_emulator.new_user()
    traces = Traces()
    own = used_site(world, traces, token=user.id_token, sessions=1)
    key = new_guest_key()
    guest = used_site(world, traces, guest=key, sessions=1)
    assert register(world.api, user, key).json()["mergedFromVisitorNumber"] == guest[0]["visitorNumber"]
    traces.ids |= {user.uid, user.email}
    researcher = auth_emulator.researcher(True)

    answer = world.api.post("erase_visitor", {"visitorNumber": guest[0]["visitorNumber"]}, token=researcher.id_token)

    assert answer.status_code == 202, answer.text
    assert {k: v for k, v in answer.json().items() if k != "erasureId"} == {
        "status": "done",
        "sessions": 2,
        "responses": 6,
        "uploads": 4,
        "objects": 4,
    }
    assert everything_left(world.db, stack.firestore, storage_client, BUCKET, traces) == []
    (row,) = ledger(world.db)
    assert (row.requested_by, row.visitor_number, row.merged_numbers) == (
        "researcher",
        own[0]["visitorNumber"],
        [guest[0]["visitorNumber"]],
    )


def test_erase_visitor_is_for_researchers_of_every_experiment(api, db, auth_emulator, firestore, bucket):
    key = new_guest_key()
    number = api.post("create_session", {}, guest=key).json()["visitorNumber"]
    scoped = auth_emulator.researcher(["study-1"])
    plain = auth_emulator.new_user()

    assert_error(api.post("erase_visitor", {"visitorNumber": number}, token=scoped.id_token), 403, "permission_denied")
    assert_error(api.post("erase_visitor", {"visitorNumber": number}, token=plain.id_token), 403, "permission_denied")
    assert_error(api.post("erase_visitor", {"visitorNumber": number}), 401, "unauthenticated")
    assert_error(api.post("erase_visitor", {"visitorNumber": number}, guest=key), 401, "unauthenticated")
    assert scalar(db, "SELECT count(*) FROM sessions") == 1
    assert scalar(db, "SELECT count(*) FROM erasures") == 0


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"visitorNumber": "1"},
        {"visitorNumber": 0},
        {"visitorNumber": -3},
        {"visitorNumber": 1.5},
        {"visitorNumber": 2**63},
        {"visitorNumber": 1, "x": 1},
    ],
)
def test_erase_visitor_refuses_a_bad_body(api, db, auth_emulator, firestore, bucket, body):
    researcher = auth_emulator.researcher(True)
    assert_error(api.post("erase_visitor", body, token=researcher.id_token), 400, "invalid_argument")


def test_erase_visitor_of_an_unknown_number_is_not_found(api, db, auth_emulator, firestore, bucket):
    researcher = auth_emulator.researcher(True)
    api.post("create_session", {}, guest=new_guest_key())
    assert_error(api.post("erase_visitor", {"visitorNumber": 99}, token=researcher.id_token), 404, "not_found")
    assert scalar(db, "SELECT count(*) FROM sessions") == 1
