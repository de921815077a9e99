"""A restart of the local stack in the middle of a visit, as `make dev` runs it (keep_state):
PostgreSQL, the Auth emulator's accounts, Firestore's documents and Storage's objects all
come back together: the browser is still signed in to the same account (same uid, not a
second user with the same email), it sees its sessions and its upload, and Firestore still
holds the upload's record; a token revoked before the restart stays revoked. Then
`make dev-reset` wipes the four together.

The test starts (and restarts) a stack of its own, in its own folder, on free ports: the
shared test stack is never stopped.
"""

from __future__ import annotations

import re
import time

import requests

from devtools import dev
from devtools.clients import AuthEmulatorClient
from devtools.stack import BUCKET, PROJECT, Stack
from tests.e2e.test_browser import (
    BUNDLE,
    answer,
    chromium,
    header,
    in_chromium,
    new_page,
    output_dir,  # noqa: F401 - a fixture, shared with the page's other tests
    progress,
    saved,
)
from tests.support import Api, assert_error


def stack_in(workdir, ports=None) -> Stack:
    options = dict(keep_state=True, storage_events=True, fast_postgres=True)  # fsync off: a clean stop still writes all
    if ports is None:
        return Stack.with_free_ports(workdir, **options)
    return Stack(workdir=workdir, ports=ports, **options)


def valid_since(auth_host: str, uid: str) -> str | None:
    """The account's validSince (tokens issued before it are refused), as firebase-admin's get_user reads it."""
    response = requests.post(
        f"http://{auth_host}/identitytoolkit.googleapis.com/v1/projects/{PROJECT}/accounts:lookup",
        json={"localId": [uid]},
        headers={"Authorization": "Bearer owner"},
        timeout=10,
    )
    response.raise_for_status()
    return response.json()["users"][0].get("validSince")


def saved_token_check(auth_host: str, token: str) -> requests.Response:
    """What the Firebase SDK asks the Auth emulator about its saved user when a page loads (accounts:lookup)."""
    return requests.post(
        f"http://{auth_host}/identitytoolkit.googleapis.com/v1/accounts:lookup?key=fake-api-key",
        json={"idToken": token},
        timeout=10,
    )


def assert_revoked(stack: Stack, token: str) -> None:
    """Refused by the functions (firebase-admin's check_revoked) and by the Auth emulator itself."""
    error = assert_error(Api(stack.env()["FUNCTIONS_URL"]).get("get_visitor", token=token), 401, "unauthenticated")
    assert "revoked" in error["message"]
    lookup = saved_token_check(stack.auth.host, token)
    assert lookup.status_code == 400 and "TOKEN_EXPIRED" in lookup.text


@in_chromium
def test_a_restart_keeps_the_account_its_sessions_and_its_uploads(tmp_path, output_dir):
    from playwright.sync_api import expect

    workdir = tmp_path / "local"
    stack = stack_in(workdir).start()
    try:
        with chromium(BUNDLE) as browser, new_page(browser, viewport={"width": 900, "height": 1000}) as page:
            url = stack.env()["FUNCTIONS_URL"] + "/"
            page.goto(url)
            page.get_by_role("button", name="Start").click()
            expect(header(page)).to_have_text("Visitor #1")
            for text in ("blue", "Lyon", "toast"):
                answer(page, text)
            expect(progress(page)).to_have_text("All 3 questions answered")
            saved(page)
            upload = tmp_path / "notes.txt"
            upload.write_text("kept across a restart\n")
            page.locator("#file").set_input_files(str(upload))
            page.get_by_role("button", name="Upload").click()
            expect(page.locator("#upload-status")).to_have_text("notes.txt is saved (22 bytes).")
            page.get_by_label("Email").fill("restart@example.com")
            page.get_by_label("Password").fill("correct-horse")
            page.get_by_role("button", name="Sign up", exact=True).click()
            expect(page.locator("#account")).to_have_text("Signed in as restart@example.com • 1 session migrated")
            uploads_before = [d for d in stack.firestore.all_documents() if "/uploads/" in d["name"]]
            assert len(uploads_before) == 1
            emulator = AuthEmulatorClient(stack.auth.host, PROJECT)
            uid = emulator.sign_in("restart@example.com", "correct-horse").uid
            # Another account whose tokens are revoked before the restart (as firebase-admin's
            # revoke_refresh_tokens, or a password change, does): a second ahead, as validSince
            # has whole seconds.
            revoked = emulator.sign_up("revoked@example.com")
            emulator.revoke_tokens(revoked.uid, valid_since=int(time.time()) + 1)
            assert_revoked(stack, revoked.id_token)
            # And an anonymous account (the anonymous-auth mode's guest), which has no validSince.
            anonymous = emulator.anonymous()
            kept = {u: valid_since(stack.auth.host, u) for u in (uid, revoked.uid, anonymous.uid)}
            assert kept[anonymous.uid] is None
            time.sleep(1.1)  # the restart's import is a second or more after every token, so it would refuse them

            ports = dict(stack.ports)
            stack.stop()  # as Ctrl-C does: every part gets SIGTERM, the emulators save what they hold
            stack = stack_in(workdir, ports).start()

            # The page, reloaded, is still signed in (the SDK's saved token passes its check with the
            # Auth emulator), without signing in again, and finds everything there.
            page.reload()
            expect(page.locator("#account")).to_have_text("Signed in as restart@example.com • 1 session migrated")
            expect(header(page)).to_have_text("Visitor #1")
            expect(progress(page)).to_have_text("All 3 questions answered")
            expect(page.locator("#history li")).to_have_text([re.compile(r"^Started .+ • 3 answers$")])
            expect(page.locator("#upload-status")).to_have_text("notes.txt is saved (22 bytes).")
            expect(page.locator("#error")).to_be_hidden()
            page.screenshot(path=str(output_dir / "after-restart.png"), full_page=True)
        # Each account's validSince is the one it had: not the import's time (which signed the page
        # out), nor lower, so the token revoked before the restart is still refused. The anonymous
        # account's is "0": no token refused for its age, as with none, so it keeps its token too.
        assert {u: valid_since(stack.auth.host, u) for u in kept} == {**kept, anonymous.uid: "0"}
        assert_revoked(stack, revoked.id_token)
        assert saved_token_check(stack.auth.host, anonymous.id_token).status_code == 200
        # The same account (same uid, not a new one with the same email), and the same upload record.
        assert AuthEmulatorClient(stack.auth.host, PROJECT).sign_in("restart@example.com", "correct-horse").uid == uid
        uploads_after = [d for d in stack.firestore.all_documents() if "/uploads/" in d["name"]]
        assert [d["name"] for d in uploads_after] == [d["name"] for d in uploads_before]
        assert uploads_after[0]["fields"] == uploads_before[0]["fields"]
    finally:
        stack.stop()

    # make dev-reset: all four stores wiped together; the next start is empty.
    assert dev.reset(workdir, ports) == 0
    assert not any((workdir / name).exists() for name in dev.STATE)
    stack = stack_in(workdir, ports).start()
    try:
        login = requests.post(
            f"http://{stack.auth.host}/identitytoolkit.googleapis.com/v1/accounts:signInWithPassword?key=fake-api-key",
            json={"email": "restart@example.com", "password": "correct-horse"},
            timeout=10,
        )
        assert login.status_code == 400 and "EMAIL_NOT_FOUND" in login.text
        assert stack.firestore.all_documents() == []
        listed = requests.get(f"{stack.storage.url}/storage/v1/b/{BUCKET}/o", timeout=10).json()
        assert listed.get("items", []) == []
    finally:
        stack.stop()
