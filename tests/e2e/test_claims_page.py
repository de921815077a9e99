"""The reference page's other ways to keep a guest's data (SPEC §13), in Chromium against the
test stack: a guest who signs in to an account that exists already, a guest moved to another
browser with a claim code, and the anonymous-auth mode (the guest is a Firebase anonymous
account) through a link and through an account that exists already.

Each test asserts what the page says and what PostgreSQL holds afterwards, and leaves a
screenshot in test-results/<test name>/.
"""

from __future__ import annotations

import re

import pytest

from devtools.ports import free_port
from devtools.stack import FunctionsServer
from tests.e2e.test_browser import answer, browser, header, in_chromium, new_page, output_dir, progress, saved  # noqa: F401 - fixtures, shared with the page's other tests
from tests.support import register, rows

PASSWORD = "correct-horse-battery"  # tests.support's AuthEmulatorClient signs users up with it


def fresh_page(browser):
    return new_page(browser, viewport={"width": 900, "height": 1100})


def existing_account(api, auth_emulator):
    """An account with a visitor number and one session of its own, made before the page opens."""
    user = auth_emulator.new_user()
    assert register(api, user).status_code == 201
    session = api.post("create_session", {"experimentId": "earlier"}, token=user.id_token)
    assert session.status_code == 201, session.text
    return user, session.json()


def answer_all(page, number: int):
    from playwright.sync_api import expect

    for text in ("blue", "Lyon", "toast"):
        answer(page, text)
    expect(header(page)).to_have_text(f"Visitor #{number}")
    expect(progress(page)).to_have_text("All 3 questions answered")
    saved(page)


def start(page, url: str, number: int):
    from playwright.sync_api import expect

    page.goto(url)
    page.get_by_role("button", name="Start").click()
    expect(header(page)).to_have_text(f"Visitor #{number}")
    expect(progress(page)).to_have_text("Question 1 of 3")


def sign_in(page, email: str, button: str = "I already have an account"):
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name=button, exact=True).click()


def assert_folded(db, user_id: str, guest_session_ids: list[str], from_number: int, to_number: int):
    """Every session of the guest and its responses are the user's, with the user's number; the merge is recorded."""
    sessions = rows(
        db, "SELECT user_id, visitor_number FROM sessions WHERE id::text = ANY(:ids)", ids=guest_session_ids
    )
    assert [(s.user_id, s.visitor_number) for s in sessions] == [(user_id, to_number)] * len(guest_session_ids)
    responses = rows(
        db, "SELECT visitor_number FROM responses WHERE session_id::text = ANY(:ids)", ids=guest_session_ids
    )
    assert [r.visitor_number for r in responses] == [to_number] * 3
    assert [(m.from_number, m.to_number) for m in rows(db, "SELECT from_number, to_number FROM visitor_merges")] == [
        (from_number, to_number)
    ]


@in_chromium
def test_a_guest_who_signs_in_to_an_existing_account_is_folded_into_it(
    stack, api, db, auth_emulator, browser, output_dir
):
    from playwright.sync_api import expect

    user, _ = existing_account(api, auth_emulator)  # Visitor #1
    with fresh_page(browser) as page:
        start(page, stack.env()["FUNCTIONS_URL"] + "/", 2)
        guest_session = page.evaluate("localStorage.getItem('sessionId')")
        answer_all(page, 2)
        sign_in(page, user.email)

        expect(page.locator("#account")).to_have_text(
            f"Signed in as {user.email} • Visitor #2 was folded into Visitor #1 (1 session)"
        )
        expect(header(page)).to_have_text("Visitor #1")
        expect(progress(page)).to_have_text("All 3 questions answered")
        expect(page.locator("#history li")).to_have_count(2)
        expect(page.locator("#history li").first).to_have_text(re.compile(r"^Started .+ • 3 answers$"))
        expect(page.locator("#history li").last).to_have_text(re.compile(r"^Started .+ • 0 answers$"))
        expect(page.locator("#signup-step")).to_be_hidden()
        assert page.evaluate("localStorage.getItem('guestKey')") is None
        page.screenshot(path=str(output_dir / "folded.png"), full_page=True)

        page.reload()  # the note stays with the account
        expect(page.locator("#account")).to_have_text(
            f"Signed in as {user.email} • Visitor #2 was folded into Visitor #1 (1 session)"
        )
    assert_folded(db, user.uid, [guest_session], 2, 1)
    assert [(g.claimed_by) for g in rows(db, "SELECT claimed_by FROM guests")] == [user.uid]


@in_chromium
def test_a_wrong_password_for_an_existing_account_is_a_sentence_and_claims_nothing(
    stack, api, db, auth_emulator, browser
):
    from playwright.sync_api import expect

    user, _ = existing_account(api, auth_emulator)
    with fresh_page(browser) as page:
        start(page, stack.env()["FUNCTIONS_URL"] + "/", 2)
        answer_all(page, 2)
        page.get_by_label("Email").fill(user.email)
        page.get_by_label("Password").fill("not-the-password")
        page.get_by_role("button", name="I already have an account").click()
        # The emulator says auth/wrong-password, production auth/invalid-credential: the same sentence.
        expect(page.locator("#error")).to_have_text("Sign-in failed: the email or the password is not right.")
        expect(page.locator("#account-line")).to_be_hidden()
        expect(header(page)).to_have_text("Visitor #2")
        expect(progress(page)).to_have_text("All 3 questions answered")
    assert [
        (s.user_id is None, s.visitor_number)
        for s in rows(db, "SELECT user_id, visitor_number FROM sessions WHERE experiment_id = 'reference-page'")
    ] == [(True, 2)]
    assert rows(db, "SELECT * FROM visitor_merges") == []


@in_chromium
def test_a_code_from_one_browser_brings_the_guest_to_a_user_signed_in_in_another(
    stack, api, db, auth_emulator, browser, output_dir
):
    from playwright.sync_api import expect

    user, _ = existing_account(api, auth_emulator)  # Visitor #1
    url = stack.env()["FUNCTIONS_URL"] + "/"
    with fresh_page(browser) as phone, fresh_page(browser) as laptop:
        start(phone, url, 2)  # "device 1": a guest
        guest_session = phone.evaluate("localStorage.getItem('sessionId')")
        answer_all(phone, 2)
        phone.get_by_role("button", name="Get a code").click()
        expect(phone.locator("#handoff-code")).to_contain_text("Your code: ")
        phone.screenshot(path=str(output_dir / "device-1-code.png"), full_page=True)
        code = re.search(r"Your code: (\S+) ", phone.locator("#handoff-code").inner_text()).group(1)
        assert len(code) == 8

        laptop.goto(url)  # "device 2": a returning user signs in, then enters the code
        expect(laptop.get_by_role("button", name="Start")).to_be_enabled()
        sign_in(laptop, user.email)
        expect(laptop.locator("#account")).to_have_text(f"Signed in as {user.email}")
        expect(laptop.get_by_label("Code from the other device")).to_be_visible()
        laptop.get_by_label("Code from the other device").fill(code.lower())  # typed as it comes
        laptop.get_by_role("button", name="Bring it here").click()
        expect(laptop.locator("#claim-status")).to_have_text("Visitor #2 was folded into Visitor #1 (1 session)")
        expect(laptop.locator("#account")).to_have_text(
            f"Signed in as {user.email} • Visitor #2 was folded into Visitor #1 (1 session)"
        )
        expect(laptop.locator("#history li").first).to_have_text(re.compile(r"^Started .+ • 3 answers$"))
        laptop.screenshot(path=str(output_dir / "device-2-claimed.png"), full_page=True)

        laptop.get_by_label("Code from the other device").fill(code)  # again: harmless to the user who used it
        laptop.get_by_role("button", name="Bring it here").click()
        expect(laptop.locator("#claim-status")).to_have_text(
            "Nothing more to bring: that code's guest is already here."
        )
        laptop.get_by_label("Code from the other device").fill("ABCDEFGH")  # a wrong one: a message, nothing moves
        laptop.get_by_role("button", name="Bring it here").click()
        expect(laptop.locator("#error")).to_contain_text("wrong, used or expired")
        expect(laptop.locator("#error")).to_have_attribute("data-code", "invalid_argument")

        phone.reload()  # the phone's guest lives in the account now: the phone says so and starts afresh
        expect(phone.locator("#error")).to_contain_text("sign in")
        expect(header(phone)).to_have_text("Welcome")
        assert phone.evaluate("localStorage.getItem('guestKey')") is None
    assert_folded(db, user.uid, [guest_session], 2, 1)


# --- the anonymous-auth mode -------------------------------------------------


@pytest.fixture
def anonymous_mode(stack, tmp_path):
    """The functions and the page served with ANONYMOUS_AUTH=true (make dev reads it the same way),
    on a port of their own."""
    server = FunctionsServer(
        free_port(), {**stack.env(), "ANONYMOUS_AUTH": "true"}, tmp_path / "functions-anonymous.log"
    ).start()
    yield server
    server.stop()


@in_chromium
def test_anonymous_mode_sign_up_links_the_account_and_keeps_everything_in_place(
    db, anonymous_mode, browser, output_dir
):
    from playwright.sync_api import expect

    with fresh_page(browser) as page:
        start(page, f"{anonymous_mode.url}/", 1)
        (anonymous,) = rows(db, "SELECT user_id, guest_id FROM sessions")
        assert anonymous.user_id is not None and anonymous.guest_id is None  # the session is the uid's
        assert page.evaluate("localStorage.getItem('guestKey')") is None  # no key in this mode
        answer_all(page, 1)
        page.get_by_label("Email").fill("linked@example.com")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign up", exact=True).click()
        expect(page.locator("#account")).to_have_text("Signed in as linked@example.com")
        expect(header(page)).to_have_text("Visitor #1")
        expect(progress(page)).to_have_text("All 3 questions answered")
        page.screenshot(path=str(output_dir / "linked.png"), full_page=True)
    # linkWithCredential: the account that signed up is the anonymous one (same uid), not a new one.
    (user,) = rows(db, "SELECT id, email, visitor_number FROM users")
    assert (user.id, user.email, user.visitor_number) == (anonymous.user_id, "linked@example.com", 1)
    assert [(s.user_id, s.visitor_number) for s in rows(db, "SELECT user_id, visitor_number FROM sessions")] == [
        (anonymous.user_id, 1)
    ]
    assert rows(db, "SELECT * FROM visitor_merges") == []


@in_chromium
@pytest.mark.parametrize("button", ["Sign up", "I already have an account"])
def test_anonymous_mode_into_an_existing_account_moves_the_data_with_the_anonymous_token(
    api, db, auth_emulator, anonymous_mode, browser, output_dir, button
):
    """ "Sign up" with an existing account's email: Firebase refuses the link
    (auth/email-already-in-use), and the page signs in and sends X-Anonymous-Token instead."""
    from playwright.sync_api import expect

    user, _ = existing_account(api, auth_emulator)  # Visitor #1
    with fresh_page(browser) as page:
        start(page, f"{anonymous_mode.url}/", 2)
        guest_session = page.evaluate("localStorage.getItem('sessionId')")
        (anonymous_uid,) = [
            s.user_id for s in rows(db, "SELECT user_id FROM sessions WHERE id::text = :id", id=guest_session)
        ]
        answer_all(page, 2)
        sign_in(page, user.email, button)
        expect(page.locator("#account")).to_have_text(
            f"Signed in as {user.email} • Visitor #2 was folded into Visitor #1 (1 session)"
        )
        expect(header(page)).to_have_text("Visitor #1")
        expect(progress(page)).to_have_text("All 3 questions answered")
        page.screenshot(path=str(output_dir / "merged.png"), full_page=True)
    assert_folded(db, user.uid, [guest_session], 2, 1)
    # The anonymous uid is done: its token now gets guest_claimed.
    claimed = rows(db, "SELECT claimed_by FROM users WHERE id = :id", id=anonymous_uid)
    assert [c.claimed_by for c in claimed] == [user.uid]
