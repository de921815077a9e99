"""Claims in process (tests/inprocess/conftest.py): what register and create_claim_code
write to the log (never an email, uid, guest key, token or claim code), and the rarer
refusals: a claimed uid that was linked since, and the old anonymous token of a linked account."""

import base64
import json

from shared.web.auth import hash_guest_key
from tests.support import assert_error, guest_with_sessions, new_guest_key, rows


def test_the_log_of_claims_names_no_person_key_token_or_code(api, db, auth_emulator, lines):
    key = new_guest_key()
    guest_with_sessions(api, key, sessions=1, responses_each=1)
    code = api.post("create_claim_code", {}, guest=key).json()["claimCode"]
    user, anonymous = auth_emulator.new_user(), auth_emulator.anonymous()
    api.post("create_session", {}, token=anonymous.id_token)
    assert api.post("register", {"claimCode": "23456789"}, token=user.id_token).status_code == 400
    assert api.post("register", {"claimCode": code}, token=user.id_token).status_code == 201
    assert (
        api.post("register", {}, token=user.id_token, headers={"X-Anonymous-Token": anonymous.id_token}).status_code
        == 200
    )
    guesser = auth_emulator.new_user()
    for _ in range(6):
        api.post("register", {"claimCode": "23456789"}, token=guesser.id_token)

    text = "\n".join(record.getMessage() + repr(getattr(record, "fields", {})) for record in lines)
    assert "registered user" in text and "made a claim code" in text and "too many wrong" in text
    secrets = [
        key,
        hash_guest_key(key).hex(),
        code,
        user.uid,
        user.email,
        anonymous.uid,
        guesser.uid,
        guesser.email,
        user.id_token,
        anonymous.id_token,
    ]
    assert [secret for secret in secrets if secret in text] == []


def test_a_claimed_anonymous_uid_linked_afterwards_cannot_register(api, db, auth_emulator):
    anonymous, claimer = auth_emulator.anonymous(), auth_emulator.new_user()
    api.post("create_session", {}, token=anonymous.id_token)
    assert (
        api.post("register", {}, token=claimer.id_token, headers={"X-Anonymous-Token": anonymous.id_token}).status_code
        == 201
    )
    linked = auth_emulator.link(anonymous)  # the same uid, signed in now
    before = rows(db, "SELECT * FROM users ORDER BY id")

    assert_error(api.post("register", {}, token=linked.id_token), 403, "guest_claimed")
    assert_error(api.post("create_session", {}, token=linked.id_token), 403, "guest_claimed")
    assert rows(db, "SELECT * FROM users ORDER BY id") == before  # no number, no email taken


def test_an_anonymous_uid_claiming_itself_after_linking_moves_nothing(api, db, auth_emulator):
    anonymous = auth_emulator.anonymous()
    session = api.post("create_session", {}, token=anonymous.id_token).json()
    linked = auth_emulator.link(anonymous)
    # Linking sets a password, and the Auth emulator then sets validSince to that second: the
    # anonymous token is revoked if it was issued a second earlier (the test failed whenever the link
    # crossed a second). validSince back at the anonymous token's own second keeps both valid.
    issued = json.loads(base64.urlsafe_b64decode(anonymous.id_token.split(".")[1] + "=="))["iat"]
    auth_emulator.revoke_tokens(anonymous.uid, valid_since=issued)

    answer = api.post("register", {}, token=linked.id_token, headers={"X-Anonymous-Token": anonymous.id_token})

    assert answer.status_code == 200, answer.text
    assert (answer.json()["migrated"], answer.json()["user"]["visitorNumber"]) == (False, session["visitorNumber"])
    assert rows(db, "SELECT user_id FROM sessions") == [(anonymous.uid,)]
    assert rows(db, "SELECT claimed_by FROM users") == [(None,)]
