"""register in process (tests/inprocess/conftest.py):
a signed-up user's record, and the claim of the guest it
was before; what the frontend sees, and every row in users, guests, sessions,
responses and visitor_merges."""

import time
import uuid

import pytest
from sqlalchemy import text

from shared.web.auth import hash_guest_key
from tests.support import (
    assert_error,
    guest_row,
    guest_with_sessions,
    new_guest_key,
    register,
    resume_numbering,
    rows,
    scalar,
    stop_numbering,
)

USER_FIELDS = {"id", "email", "displayName", "visitorNumber", "createdAt"}
TABLES = {"users": "id", "guests": "id", "sessions": "id", "responses": "id", "visitor_merges": "from_number"}


def snapshot(db) -> dict[str, list]:
    """Every row of every table, to show that a refused call changed nothing."""
    return {table: rows(db, f"SELECT * FROM {table} ORDER BY {key}") for table, key in TABLES.items()}


# --- the users row -----------------------------------------------------------------------------


def test_new_user_without_guest_gets_a_row_and_a_number(api, db, auth_emulator):
    user = auth_emulator.new_user()

    response = register(api, user, body={"displayName": "Ada Lovelace"})

    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"user", "migrated", "migratedSessions", "mergedFromVisitorNumber"}
    assert set(body["user"]) == USER_FIELDS
    assert body["user"]["id"] == user.uid and body["user"]["email"] == user.email
    assert body["user"]["displayName"] == "Ada Lovelace" and body["user"]["visitorNumber"] == 1
    assert body["user"]["createdAt"].endswith("Z")
    assert (body["migrated"], body["migratedSessions"], body["mergedFromVisitorNumber"]) == (False, 0, None)
    (row,) = rows(db, "SELECT * FROM users")
    assert (row.id, row.email, row.display_name, row.visitor_number) == (user.uid, user.email, "Ada Lovelace", 1)
    assert scalar(db, "SELECT count(*) FROM guests") == 0
    assert scalar(db, "SELECT count(*) FROM visitor_merges") == 0
    # Its first session keeps the number registration gave it.
    assert api.post("create_session", {}, token=user.id_token).json()["visitorNumber"] == 1


def test_user_known_from_a_session_answers_200_and_keeps_its_number(api, db, auth_emulator):
    api.post("create_session", guest=new_guest_key())  # number 1
    user = auth_emulator.new_user()
    session = api.post("create_session", token=user.id_token).json()
    before = rows(db, "SELECT * FROM users")[0]

    response = register(api, user, body={"displayName": "Grace"})

    assert response.status_code == 200
    assert response.json()["user"]["visitorNumber"] == session["visitorNumber"] == 2
    (row,) = rows(db, "SELECT * FROM users")
    assert (row.visitor_number, row.display_name, row.created_at) == (2, "Grace", before.created_at)
    assert row.updated_at > before.updated_at


def test_display_name_is_kept_unless_sent_and_email_comes_from_the_token(api, db, auth_emulator):
    user = auth_emulator.new_user()
    register(api, user, body={"displayName": "First"})
    assert register(api, user).json()["user"]["displayName"] == "First"
    assert register(api, user, body={"displayName": None}).json()["user"]["displayName"] == "First"
    renamed = register(api, user, body={"displayName": "Zoë 🦊 Second"}).json()["user"]
    assert renamed["displayName"] == "Zoë 🦊 Second" and renamed["email"] == user.email
    assert rows(db, "SELECT display_name, email FROM users") == [("Zoë 🦊 Second", user.email)]
    # The email is the token's; a body cannot set it.
    error = assert_error(register(api, user, body={"email": "other@example.com"}), 400, "invalid_argument")
    assert "email" in error["message"]
    assert scalar(db, "SELECT email FROM users") == user.email


# --- the claim ---------------------------------------------------------------------------------


def test_claim_moves_every_session_and_the_user_takes_the_guests_number(api, db, auth_emulator):
    key, bystander = new_guest_key(), new_guest_key()
    sessions = guest_with_sessions(api, key, sessions=3, responses_each=2)
    guest_with_sessions(api, bystander, sessions=1, responses_each=1)
    user = auth_emulator.new_user()
    guest_before = guest_row(db, key)
    bystander_before = snapshot(db)

    response = register(api, user, guest=key)

    assert response.status_code == 201
    body = response.json()
    assert body["user"]["visitorNumber"] == 1 and body["user"]["id"] == user.uid
    assert (body["migrated"], body["migratedSessions"], body["mergedFromVisitorNumber"]) == (True, 3, None)
    assert scalar(db, "SELECT visitor_number FROM users WHERE id = :u", u=user.uid) == 1
    guest = guest_row(db, key)
    assert guest.claimed_by == user.uid and guest.claimed_at is not None
    assert (guest.id, guest.visitor_number) == (guest_before.id, 1)
    moved = rows(db, "SELECT id, user_id, guest_id, visitor_number FROM sessions WHERE guest_id = :g", g=guest.id)
    assert {str(s.id) for s in moved} == {s["sessionId"] for s in sessions}
    assert {(s.user_id, s.visitor_number) for s in moved} == {(user.uid, 1)}
    assert rows(
        db,
        "SELECT DISTINCT r.visitor_number FROM responses r JOIN sessions s ON s.id = r.session_id WHERE s.user_id = :u",
        u=user.uid,
    ) == [(1,)]
    assert (
        scalar(
            db,
            "SELECT count(*) FROM responses r JOIN sessions s ON s.id = r.session_id WHERE s.user_id = :u",
            u=user.uid,
        )
        == 6
    )
    assert scalar(db, "SELECT count(*) FROM visitor_merges") == 0
    # The other guest's rows are untouched.
    other = guest_row(db, bystander)
    assert [r for r in snapshot(db)["sessions"] if r.guest_id == other.id] == [
        r for r in bystander_before["sessions"] if r.guest_id == other.id
    ]
    assert other.claimed_by is None and other.visitor_number == 2


def test_user_with_a_number_keeps_it_and_the_merge_is_recorded(api, db, auth_emulator):
    key = new_guest_key()
    guest_with_sessions(api, key, sessions=2, responses_each=3)  # guest: number 1
    user = auth_emulator.new_user()
    own = api.post("create_session", {}, token=user.id_token).json()  # user: number 2

    response = register(api, user, guest=key, body={"displayName": "Two Devices"})

    assert response.status_code == 200
    body = response.json()
    assert body["user"]["visitorNumber"] == own["visitorNumber"] == 2
    assert (body["migrated"], body["migratedSessions"], body["mergedFromVisitorNumber"]) == (True, 2, 1)
    assert rows(db, "SELECT from_number, to_number, user_id FROM visitor_merges") == [(1, 2, user.uid)]
    assert scalar(db, "SELECT visitor_number FROM users") == 2
    assert guest_row(db, key).visitor_number == 1  # the guest's own record keeps its history
    assert rows(db, "SELECT DISTINCT user_id, visitor_number FROM sessions") == [(user.uid, 2)]
    assert rows(db, "SELECT DISTINCT visitor_number FROM responses") == [(2,)]
    assert scalar(db, "SELECT count(*) FROM responses") == 6
    # A query by the old number still finds the data, through visitor_merges.
    assert (
        scalar(
            db,
            "SELECT count(*) FROM responses WHERE visitor_number IN "
            "(SELECT to_number FROM visitor_merges WHERE from_number = 1)",
        )
        == 6
    )


def test_a_second_guest_of_the_same_user_is_merged_into_the_first_ones_number(api, db, auth_emulator):
    laptop, phone = new_guest_key(), new_guest_key()
    guest_with_sessions(api, laptop, sessions=1, responses_each=1)  # 1
    guest_with_sessions(api, phone, sessions=2, responses_each=1)  # 2
    user = auth_emulator.new_user()

    first = register(api, user, guest=laptop).json()
    second = register(api, user, guest=phone).json()

    assert (first["user"]["visitorNumber"], first["mergedFromVisitorNumber"]) == (1, None)
    assert (second["user"]["visitorNumber"], second["migratedSessions"], second["mergedFromVisitorNumber"]) == (1, 2, 2)
    assert rows(db, "SELECT from_number, to_number, user_id FROM visitor_merges") == [(2, 1, user.uid)]
    assert rows(db, "SELECT DISTINCT user_id, visitor_number FROM sessions") == [(user.uid, 1)]
    assert rows(db, "SELECT DISTINCT visitor_number FROM responses") == [(1,)]
    assert {r.claimed_by for r in rows(db, "SELECT claimed_by FROM guests")} == {user.uid}


def test_calling_register_again_is_harmless(api, db, auth_emulator):
    key = new_guest_key()
    guest_with_sessions(api, key)
    user = auth_emulator.new_user()
    first = register(api, user, guest=key, body={"displayName": "Once"})
    before = snapshot(db)

    again = register(api, user, guest=key, body={"displayName": "Once"})
    without_key = register(api, user)

    assert first.status_code == 201 and again.status_code == 200 and without_key.status_code == 200
    for answer in (again.json(), without_key.json()):
        assert answer["user"] == first.json()["user"]
        assert (answer["migrated"], answer["migratedSessions"], answer["mergedFromVisitorNumber"]) == (False, 0, None)
    assert snapshot(db) == before  # not even updated_at moved


def test_guest_claimed_by_another_user_is_a_conflict_and_changes_nothing(api, db, auth_emulator):
    key = new_guest_key()
    guest_with_sessions(api, key)
    owner, latecomer, known = auth_emulator.new_user(), auth_emulator.new_user(), auth_emulator.new_user()
    register(api, owner, guest=key)
    register(api, known, body={"displayName": "Known"})
    before = snapshot(db)

    error = assert_error(register(api, latecomer, guest=key, body={"displayName": "Late"}), 409, "conflict")
    assert_error(register(api, known, guest=key, body={"displayName": "Renamed"}), 409, "conflict")

    assert "claimed" in error["message"]
    assert snapshot(db) == before  # no users row for the latecomer, no new name for the known user


def test_after_the_claim_the_guest_key_opens_nothing(api, db, auth_emulator):
    key = new_guest_key()
    (session,) = guest_with_sessions(api, key, sessions=1, responses_each=1)
    user = auth_emulator.new_user()
    register(api, user, guest=key)
    before = snapshot(db)

    assert_error(
        api.post("submit_response", {"sessionId": session["sessionId"], "data": {}}, guest=key),
        403,
        "permission_denied",
    )
    assert_error(api.post("create_session", {}, guest=key), 403, "guest_claimed")
    assert_error(api.get("get_visitor", guest=key), 403, "guest_claimed")
    assert snapshot(db) == before

    # The user's token opens them, and new responses carry the user's number.
    answer = api.post("submit_response", {"sessionId": session["sessionId"], "data": {}}, token=user.id_token)
    assert answer.status_code == 201 and answer.json()["visitorNumber"] == 1


def test_get_visitor_shows_the_claimed_sessions_under_the_user(api, db, auth_emulator):
    key = new_guest_key()
    claimed = guest_with_sessions(api, key, sessions=2, responses_each=2)
    user = auth_emulator.new_user()
    own = api.post("create_session", {"experimentId": "own"}, token=user.id_token).json()

    register(api, user, guest=key)
    body = api.get("get_visitor", token=user.id_token).json()

    assert (body["visitorNumber"], body["userId"], body["guestId"]) == (own["visitorNumber"], user.uid, None)
    newest_first = [own["sessionId"], claimed[1]["sessionId"], claimed[0]["sessionId"]]
    assert [s["sessionId"] for s in body["sessions"]] == newest_first
    assert [s["responseCount"] for s in body["sessions"]] == [0, 2, 2]
    assert [s["experimentId"] for s in body["sessions"]] == ["own", "exp-1", "exp-0"]


def test_a_guest_key_never_seen_claims_nothing_and_is_recorded_as_the_users(api, db, auth_emulator):
    """SPEC §13: the key is recorded as claimed (no number taken for it), so that its
    first create_session, even one racing this register, is refused."""
    user, other = auth_emulator.new_user(), auth_emulator.new_user()
    key = new_guest_key()
    response = register(api, user, guest=key)
    assert response.status_code == 201
    body = response.json()
    assert (body["migrated"], body["migratedSessions"], body["user"]["visitorNumber"]) == (False, 0, 1)
    row = guest_row(db, key)
    assert (row.claimed_by, row.visitor_number) == (user.uid, None) and row.claimed_at is not None
    assert scalar(db, "SELECT count(*) FROM users") == 1
    assert scalar(db, "SELECT last_value FROM visitor_number_seq") == 1  # only the user's number

    assert_error(api.post("create_session", {}, guest=key), 403, "guest_claimed")
    again = register(api, user, guest=key)
    assert (again.status_code, again.json()["migrated"], again.json()["migratedSessions"]) == (200, False, 0)
    assert_error(register(api, other, guest=key), 409, "conflict")
    assert scalar(db, "SELECT count(*) FROM sessions") == 0


# --- visitors created while numbering was failing -----------------------------------------------


def test_guest_without_number_claimed_by_user_without_number(api, db, auth_emulator):
    key = new_guest_key()
    stop_numbering(db)
    (session,) = guest_with_sessions(api, key, sessions=1, responses_each=2)
    assert session["visitorNumber"] is None
    resume_numbering(db)
    user = auth_emulator.new_user()

    body = register(api, user, guest=key).json()

    number = body["user"]["visitorNumber"]
    assert number is not None and body["mergedFromVisitorNumber"] is None and body["migratedSessions"] == 1
    assert rows(db, "SELECT DISTINCT user_id, visitor_number FROM sessions") == [(user.uid, number)]
    assert rows(db, "SELECT DISTINCT visitor_number FROM responses") == [(number,)]
    assert scalar(db, "SELECT count(*) FROM visitor_merges") == 0


def test_guest_without_number_claimed_by_user_with_one_records_no_merge(api, db, auth_emulator):
    key = new_guest_key()
    user = auth_emulator.new_user()
    own = api.post("create_session", {}, token=user.id_token).json()
    stop_numbering(db)
    guest_with_sessions(api, key, sessions=2, responses_each=1)
    resume_numbering(db)

    body = register(api, user, guest=key).json()

    assert (body["user"]["visitorNumber"], body["migratedSessions"], body["mergedFromVisitorNumber"]) == (
        own["visitorNumber"],
        2,
        None,
    )
    assert rows(db, "SELECT DISTINCT visitor_number FROM sessions") == [(own["visitorNumber"],)]
    assert rows(db, "SELECT DISTINCT visitor_number FROM responses") == [(own["visitorNumber"],)]
    assert scalar(db, "SELECT count(*) FROM visitor_merges") == 0


def test_register_while_numbering_fails_still_registers(api, db, auth_emulator):
    user = auth_emulator.new_user()
    stop_numbering(db)

    response = register(api, user, body={"displayName": "Patient"})

    assert response.status_code == 201
    assert response.json()["user"]["visitorNumber"] is None
    assert rows(db, "SELECT display_name, visitor_number FROM users") == [("Patient", None)]
    resume_numbering(db)
    # The next call numbers the user, and sessions use that number.
    number = register(api, user).json()["user"]["visitorNumber"]
    assert number is not None
    assert api.post("create_session", {}, token=user.id_token).json()["visitorNumber"] == number


def test_user_whose_sessions_lack_a_number_gets_one_on_everything(api, db, auth_emulator):
    user = auth_emulator.new_user()
    stop_numbering(db)
    session = api.post("create_session", {}, token=user.id_token).json()
    api.post("submit_response", {"sessionId": session["sessionId"], "data": 1}, token=user.id_token)
    resume_numbering(db)

    number = register(api, user).json()["user"]["visitorNumber"]

    assert number is not None
    assert rows(db, "SELECT visitor_number FROM sessions") == [(number,)]
    assert rows(db, "SELECT visitor_number FROM responses") == [(number,)]


# --- size and failure ------------------------------------------------------------------------------


def seed_guest(db, key: str, sessions: int, responses_each: int) -> tuple[uuid.UUID, int]:
    """A guest with many sessions and responses, written directly (fast), numbered as create_session does."""
    guest_id = uuid.uuid4()
    with db.begin() as conn:
        number = conn.execute(
            text(
                "INSERT INTO guests (id, key_hash, visitor_number) "
                "VALUES (:g, :h, nextval('visitor_number_seq')) RETURNING visitor_number"
            ),
            {"g": str(guest_id), "h": hash_guest_key(key)},
        ).scalar_one()
        conn.execute(
            text(
                "INSERT INTO sessions (id, visitor_number, guest_id, experiment_id, created_at) "
                "SELECT gen_random_uuid(), :n, :g, 'bulk', now() - i * interval '1 second' "
                "FROM generate_series(1, :count) AS i"
            ),
            {"n": number, "g": str(guest_id), "count": sessions},
        )
        conn.execute(
            text(
                "INSERT INTO responses (id, session_id, visitor_number, level, data) "
                "SELECT gen_random_uuid(), s.id, :n, l, jsonb_build_object('level', l) "
                "FROM sessions s, generate_series(0, :last) AS l WHERE s.guest_id = :g"
            ),
            {"n": number, "g": str(guest_id), "last": responses_each - 1},
        )
    return guest_id, number


@pytest.mark.slow
def test_guest_with_200_sessions_and_1000_responses_moves_in_one_transaction(api, db, auth_emulator):
    key = new_guest_key()
    guest_id, guest_number = seed_guest(db, key, sessions=200, responses_each=5)
    user = auth_emulator.new_user()
    user_number = api.post("create_session", {}, token=user.id_token).json()["visitorNumber"]

    started = time.perf_counter()
    response = register(api, user, guest=key)
    elapsed = time.perf_counter() - started

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["migratedSessions"], body["mergedFromVisitorNumber"]) == (200, guest_number)
    assert (
        scalar(
            db,
            "SELECT count(*) FROM sessions WHERE guest_id = :g AND user_id = :u AND visitor_number = :n",
            g=str(guest_id),
            u=user.uid,
            n=user_number,
        )
        == 200
    )
    assert (
        scalar(
            db,
            "SELECT count(*) FROM responses r JOIN sessions s ON s.id = r.session_id "
            "WHERE s.guest_id = :g AND s.user_id = :u AND r.visitor_number = :n",
            g=str(guest_id),
            u=user.uid,
            n=user_number,
        )
        == 1000
    )
    assert scalar(db, "SELECT count(*) FROM sessions WHERE user_id IS NULL") == 0
    # One transaction wrote them all: every row it touched carries the same xmin.
    writers = rows(
        db,
        """
        SELECT xmin::text FROM users WHERE id = :u
        UNION SELECT xmin::text FROM guests WHERE id = :g
        UNION SELECT xmin::text FROM sessions WHERE guest_id = :g
        UNION SELECT r.xmin::text FROM responses r JOIN sessions s ON s.id = r.session_id WHERE s.guest_id = :g
        UNION SELECT xmin::text FROM visitor_merges WHERE from_number = :n
        """,
        u=user.uid,
        g=str(guest_id),
        n=guest_number,
    )
    assert len(writers) == 1
    assert elapsed < 10, f"register of 200 sessions x 5 responses took {elapsed:.2f} s"
    # 1,000 rows fit well inside the functions' statement timeout.
    print(f"register of 200 sessions x 5 responses: {elapsed * 1000:.0f} ms")


@pytest.fixture
def failure_injector(db):
    """Installs a trigger that raises on the Nth row a statement updates in a table; removed afterwards."""
    installed = []

    def inject(table: str, after_rows: int, sqlstate: str):
        with db.begin() as conn:
            conn.execute(text("CREATE SEQUENCE test_injected_failure_counter"))
            conn.execute(
                text(f"""
                CREATE FUNCTION test_injected_failure() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    IF nextval('test_injected_failure_counter') > {int(after_rows)} THEN
                        RAISE EXCEPTION 'injected failure while updating {table}' USING ERRCODE = '{sqlstate}';
                    END IF;
                    RETURN NEW;
                END $$""")
            )
            conn.execute(
                text(
                    f"CREATE TRIGGER test_injected_failure BEFORE UPDATE ON {table} "
                    "FOR EACH ROW EXECUTE FUNCTION test_injected_failure()"
                )
            )
        installed.append(table)

    yield inject
    with db.begin() as conn:
        for table in installed:
            conn.execute(text(f"DROP TRIGGER IF EXISTS test_injected_failure ON {table}"))
        conn.execute(text("DROP FUNCTION IF EXISTS test_injected_failure()"))
        conn.execute(text("DROP SEQUENCE IF EXISTS test_injected_failure_counter"))


@pytest.mark.slow
@pytest.mark.parametrize(
    "table, after_rows, sqlstate, status, code",
    [
        ("responses", 500, "P0001", 500, "internal"),  # a bug or a broken constraint: 500, details in the log
        ("sessions", 100, "P0001", 500, "internal"),
        ("responses", 500, "40P01", 503, "unavailable"),  # a deadlock victim: the client may retry
    ],
)
def test_failure_midway_leaves_every_row_as_it_was(
    api, db, auth_emulator, failure_injector, table, after_rows, sqlstate, status, code
):
    key = new_guest_key()
    seed_guest(db, key, sessions=200, responses_each=5)
    user = auth_emulator.new_user()
    api.post("create_session", {}, token=user.id_token)  # a number of its own: the responses are renumbered
    failure_injector(table, after_rows, sqlstate)
    before = snapshot(db)

    response = register(api, user, guest=key, body={"displayName": "Unlucky"})

    error = assert_error(response, status, code)
    for leak in ("injected", "UPDATE", "responses", "sessions", "trigger", "SQL", "P0001", "40P01"):
        assert leak not in response.text
    if status == 503:
        assert int(response.headers["Retry-After"]) > 0
    assert error["message"]
    assert snapshot(db) == before
    assert scalar(db, "SELECT count(*) FROM visitor_merges") == 0


# --- bad credentials and bad input ---------------------------------------------------------------


def test_anonymous_firebase_user_is_refused(api, db, auth_emulator):
    key = new_guest_key()
    guest_with_sessions(api, key, sessions=1, responses_each=0)
    anonymous = auth_emulator.sign_up(None)
    before = snapshot(db)

    error = assert_error(register(api, anonymous, guest=key), 403, "permission_denied")

    assert "anonymous" in error["message"]
    assert snapshot(db) == before


def test_guest_key_alone_is_unauthenticated(api, db):
    key = new_guest_key()
    guest_with_sessions(api, key, sessions=1, responses_each=0)
    before = snapshot(db)
    error = assert_error(register(api, guest=key), 401, "unauthenticated")
    assert "Authorization: Bearer" in error["message"]
    assert_error(register(api), 401, "unauthenticated")
    assert snapshot(db) == before


def test_forged_expired_and_garbage_tokens_are_unauthenticated(api, db, auth_emulator):
    key = new_guest_key()
    guest_with_sessions(api, key, sessions=1, responses_each=0)
    user = auth_emulator.new_user()
    now = int(time.time())
    tokens = [
        auth_emulator.crafted_token(
            user.uid, aud="someone-elses-project", iss="https://securetoken.google.com/someone-elses-project"
        ),
        auth_emulator.crafted_token(user.uid, iat=now - 7200, exp=now - 3600),
        auth_emulator.crafted_token("no-such-user"),
        "not-a-jwt",
    ]
    before = snapshot(db)
    for token in tokens:
        response = api.post("register", {}, guest=key, headers={"Authorization": f"Bearer {token}"})
        assert_error(response, 401, "unauthenticated")
    assert snapshot(db) == before


@pytest.mark.parametrize("key", ["short", "x" * 31, "y" * 129, "has space" + "a" * 30, "semi;colon" + "a" * 30])
def test_malformed_guest_key_is_refused(api, db, auth_emulator, key):
    user = auth_emulator.new_user()
    assert_error(register(api, user, guest=key), 400, "invalid_argument")
    assert scalar(db, "SELECT count(*) FROM users") == 0


@pytest.mark.parametrize(
    "body, field",
    [
        ({"displayName": ""}, "displayName"),
        ({"displayName": "   "}, "displayName"),
        ({"displayName": "x" * 101}, "displayName"),
        ({"displayName": "line\nbreak"}, "displayName"),
        ({"displayName": "bell\x07"}, "displayName"),
        ({"displayName": "c1\x85control"}, "displayName"),
        ({"displayName": 42}, "displayName"),
        ({"displayName": ["Ada"]}, "displayName"),
        ({"name": "Ada"}, "name"),
    ],
)
def test_bad_body_is_refused(api, db, auth_emulator, body, field):
    user = auth_emulator.new_user()
    error = assert_error(register(api, user, body=body), 400, "invalid_argument")
    assert field in error["message"]
    assert scalar(db, "SELECT count(*) FROM users") == 0


def test_display_name_of_100_characters_is_accepted(api, db, auth_emulator):
    user = auth_emulator.new_user()
    name = "é" * 100
    assert register(api, user, body={"displayName": name}).json()["user"]["displayName"] == name


@pytest.mark.parametrize("data", [b"[]", b'"Ada"', b"{"])
def test_body_that_is_not_an_object(api, db, auth_emulator, data):
    user = auth_emulator.new_user()
    response = api.post("register", data=data, token=user.id_token, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert scalar(db, "SELECT count(*) FROM users") == 0
