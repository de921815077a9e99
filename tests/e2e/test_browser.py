"""The reference page of public/ in a real browser: Debian's Chromium driven by Playwright
(the Python package, never a browser download), against the test stack.

`make test` installs Chromium with apt when it is missing on a Debian-like machine where
it runs as root, and builds the page's bundle (public/build/); elsewhere the browser tests
skip before the stack starts, naming the package to install.
"""

from __future__ import annotations

import functools
import http.server
import importlib.util
import json
import re
import shutil
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from devtools.ports import free_port, wait_until
from devtools.stack import BUCKET, PROJECT, ROOT, FunctionsServer
from shared.visitors import upload_tickets
from tests.support import rows

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 20_000
BUNDLE = ROOT / "public" / "build" / "app.js"
OUTPUT = ROOT / "test-results"

# A skip mark, not a skip inside a fixture: it is decided before any fixture, so a machine
# without Chromium skips these tests without starting the stack.
in_chromium = pytest.mark.skipif(
    not CHROMIUM.exists() or importlib.util.find_spec("playwright") is None,
    reason=f"{CHROMIUM} is missing: install the Debian package chromium (apt-get install chromium), "
    "which `make test` does as root"
    if not CHROMIUM.exists()
    else "the playwright package is missing: run `make install` (requirements-dev.txt)",
)


@contextmanager
def chromium(bundle: Path):
    """Chromium for the tests of a page whose bundle is `bundle` (`make test` builds it)."""
    if not bundle.exists():
        pytest.fail(f"{bundle.relative_to(ROOT)} is missing: run the tests with `make test`, or `npm run build` first")
    from playwright import sync_api

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@contextmanager
def new_page(browser, **context_options):
    """A page in a browser context of its own (context_options: Playwright's new_context)."""
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    context = browser.new_context(**context_options)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    yield page
    context.close()


@pytest.fixture(scope="module")
def browser():
    with chromium(BUNDLE) as launched:
        yield launched


@pytest.fixture
def page(browser):
    with new_page(browser, viewport={"width": 900, "height": 900}) as opened:
        yield opened


@pytest.fixture
def bridge(stack, bucket, firestore):
    """Storage emulator → on_upload_finalized, as in make dev (empty bucket and Firestore)."""
    bridge = stack.event_bridge(interval=0.2).start()
    yield bridge
    bridge.stop()


@pytest.fixture
def output_dir(request):
    """test-results/<test name>/ (git-ignored), emptied: what a test leaves for a person to look at."""
    path = OUTPUT / re.sub(r"[^\w.-]", "_", request.node.name)
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def header(page):
    """The page's title line: "Visitor #N" once started, "Welcome" before."""
    return page.locator("#status")


def progress(page):
    """Where the participant is: "Question 2 of 3", "All 3 questions answered", "Finished"."""
    return page.locator("#progress")


def answer(page, text: str):
    """Answer the question shown; returns once the answer is in the package's outbox (the page
    empties the field then), so that the saving line is about it."""
    from playwright.sync_api import expect

    page.get_by_label(re.compile(r"\?$")).fill(text)
    page.get_by_role("button", name="Submit answer").click()
    expect(page.locator("#answer")).to_have_value("")


def saved(page):
    """The package's status line once the server holds every answer recorded."""
    from playwright.sync_api import expect

    expect(page.locator("#saving")).to_have_text("All answers saved")


@in_chromium
def test_whole_flow_as_a_guest_who_signs_up(stack, api, db, bridge, page, tmp_path, output_dir):
    from playwright.sync_api import expect

    requested = []
    page.on("request", lambda request: requested.append(request.url))
    base = stack.env()["FUNCTIONS_URL"]
    page.goto(base + "/")
    expect(page.get_by_role("button", name="Start")).to_be_visible()
    page.get_by_role("button", name="Start").click()
    expect(header(page)).to_have_text("Visitor #1")
    expect(progress(page)).to_have_text("Question 1 of 3")

    for text, where in (
        ("blue", "Question 2 of 3"),
        ("Lyon", "Question 3 of 3"),
        ("toast", "All 3 questions answered"),
    ):
        answer(page, text)
        expect(progress(page)).to_have_text(where)
    expect(page.locator("#progress-bar")).to_have_attribute("value", "3")
    saved(page)
    stored = rows(db, "SELECT level, data->>'answer' AS answer, visitor_number FROM responses ORDER BY level")
    assert [(r.level, r.answer, r.visitor_number) for r in stored] == [(1, "blue", 1), (2, "Lyon", 1), (3, "toast", 1)]
    # The package sent them through submit_response's batch form.
    assert any(url.endswith("/submit_response") for url in requested)

    (session_id,) = [r.id for r in rows(db, "SELECT id::text FROM sessions")]
    upload = tmp_path / "notes.txt"
    upload.write_text("hello from the browser\n")
    page.locator("#file").set_input_files(str(upload))
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("#upload-status")).to_have_text("notes.txt is saved (23 bytes).")
    # The page uploaded with firebase/storage (uploadBytes), through the Firebase Storage API that
    # the dev server serves on top of the Storage emulator, after asking create_upload_ticket; it
    # learnt that the trigger recorded the file from get_visitor, never by reading the object's
    # metadata (storage.rules forbid a deployed browser that).
    name = f"sessions%2F{session_id}%2Fnotes.txt"
    assert f"{base}/v0/b/{BUCKET}/o?name={name}" in requested
    assert f"{base}/v0/b/{BUCKET}/o/{name}" not in requested
    ticket_at = next(i for i, url in enumerate(requested) if url.endswith("/create_upload_ticket"))
    assert any(url.endswith("/get_visitor") for url in requested[ticket_at:])
    stored_object = requests.get(
        f"{stack.storage.url}/storage/v1/b/{BUCKET}/o/{name}", params={"alt": "media"}, timeout=10
    )
    assert stored_object.text == "hello from the browser\n"
    metadata = requests.get(f"{stack.storage.url}/storage/v1/b/{BUCKET}/o/{name}", timeout=10).json()["metadata"]
    assert upload_tickets.TICKET.fullmatch(metadata["uploadTicket"]) and metadata["visitorNumber"] == "1"

    page.get_by_role("button", name="Finish").click()
    expect(page.locator("#done-step")).to_be_visible()
    expect(page.locator("#done-step")).to_contain_text("Done, thank you!")
    expect(progress(page)).to_have_text("Finished")
    expect(page.get_by_role("button", name="Finish")).to_be_hidden()
    (session,) = rows(db, "SELECT outcome, completed_at FROM sessions")
    assert session.outcome == "completed" and session.completed_at is not None

    page.get_by_label("Email").fill("ada@example.com")
    page.get_by_label("Password").fill("correct-horse")
    page.get_by_role("button", name="Sign up").click()
    expect(page.locator("#account")).to_have_text("Signed in as ada@example.com • 1 session migrated")
    # The Firebase JS SDK signed up on the Auth emulator (connectAuthEmulator).
    assert f"http://{stack.auth.host}/identitytoolkit.googleapis.com/v1/accounts:signUp?key=demo-api-key" in requested
    expect(header(page)).to_have_text("Visitor #1")
    expect(page.locator("#history li")).to_have_text([re.compile(r"^Started .+ • 3 answers$")])
    assert page.evaluate("localStorage.getItem('guestKey')") is None
    (user,) = rows(db, "SELECT email, visitor_number FROM users")
    assert (user.email, user.visitor_number) == ("ada@example.com", 1)

    page.reload()
    expect(header(page)).to_have_text("Visitor #1")
    expect(progress(page)).to_have_text("Finished")
    expect(page.locator("#done-step")).to_be_visible()
    expect(page.locator("#account")).to_have_text("Signed in as ada@example.com • 1 session migrated")
    expect(page.locator("#history li")).to_have_text([re.compile(r"^Started .+ • 3 answers$")])
    expect(page.locator("#upload-status")).to_have_text("notes.txt is saved (23 bytes).")
    expect(page.locator("#error")).to_be_hidden()
    # Written for a participant: no session id, no tags of the file, no error codes.
    text = page.locator("body").inner_text()
    assert session_id not in text and session_id[:8] not in text and "uploadTicket" not in text
    # Nothing from a CDN: every request went to the stack on this machine.
    assert all(url.startswith("http://127.0.0.1:") for url in requested), requested
    page.screenshot(path=str(output_dir / "page.png"), full_page=True)
    assert (output_dir / "page.png").stat().st_size > 0


@in_chromium
def test_reload_restores_a_guest(stack, api, db, page):
    from playwright.sync_api import expect

    page.goto(stack.env()["FUNCTIONS_URL"] + "/index.html")
    page.get_by_role("button", name="Start").click()
    expect(progress(page)).to_have_text("Question 1 of 3")
    answer(page, "green")
    expect(progress(page)).to_have_text("Question 2 of 3")
    saved(page)
    page.reload()
    expect(header(page)).to_have_text("Visitor #1")
    expect(progress(page)).to_have_text("Question 2 of 3")
    expect(page.get_by_role("button", name="Start")).to_be_hidden()


@in_chromium
def test_answers_given_offline_are_kept_and_finish_waits_until_they_are_stored(stack, api, db, page):
    """The network cut after the first answer: the next two wait in the package's outbox, Finish
    says it is waiting rather than done, and once the connection is back every answer is stored
    before the page says "Done, thank you!"."""
    from playwright.sync_api import expect

    page.goto(stack.env()["FUNCTIONS_URL"] + "/")
    page.get_by_role("button", name="Start").click()
    answer(page, "blue")
    saved(page)
    page.context.set_offline(True)
    answer(page, "Lyon")
    answer(page, "toast")
    expect(progress(page)).to_have_text("All 3 questions answered")
    page.get_by_role("button", name="Finish").click()
    expect(page.locator("#saving")).to_contain_text("Not saved yet: ")
    expect(page.locator("#saving")).to_contain_text("kept in this browser")
    expect(page.locator("#done-step")).to_be_hidden()
    assert [r.level for r in rows(db, "SELECT level FROM responses")] == [1]
    assert rows(db, "SELECT id FROM sessions WHERE completed_at IS NOT NULL") == []

    page.context.set_offline(False)
    expect(page.locator("#done-step")).to_be_visible()
    expect(page.locator("#done-step")).to_contain_text("Done, thank you!")
    expect(page.locator("#saving")).to_have_text("All answers saved")
    assert [r.answer for r in rows(db, "SELECT data->>'answer' AS answer FROM responses ORDER BY level")] == [
        "blue",
        "Lyon",
        "toast",
    ]
    (session,) = rows(db, "SELECT outcome FROM sessions WHERE completed_at IS NOT NULL")
    assert session.outcome == "completed"
    expect(page.locator("#error")).to_be_hidden()


@in_chromium
def test_download_my_data_and_withdraw_are_each_confirmed(stack, api, db, bridge, page, tmp_path, output_dir):
    from playwright.sync_api import expect

    page.goto(stack.env()["FUNCTIONS_URL"] + "/")
    page.get_by_role("button", name="Start").click()
    answer(page, "blue")
    saved(page)

    with page.expect_download() as download:
        page.get_by_role("button", name="Download my data").click()
    assert download.value.suggested_filename == "visitor-1.json"
    download.value.save_as(tmp_path / "mine.json")
    exported = json.loads((tmp_path / "mine.json").read_text())
    assert exported["visitorNumber"] == 1
    assert [r["data"]["answer"] for r in exported["sessions"][0]["responses"]] == ["blue"]
    expect(page.locator("#notice")).to_have_text("Downloaded visitor-1.json: 1 session and 1 answer.")

    page.get_by_role("button", name="Withdraw").click()  # asked first; keeping the data changes nothing
    expect(page.locator("#confirm-withdraw")).to_be_visible()
    expect(page.locator("#confirm-withdraw")).to_contain_text("cannot be undone")
    page.screenshot(path=str(output_dir / "withdraw.png"), full_page=True)
    page.get_by_role("button", name="Keep my data").click()
    expect(page.locator("#confirm-withdraw")).to_be_hidden()
    assert len(rows(db, "SELECT id FROM sessions")) == 1

    page.get_by_role("button", name="Withdraw").click()
    page.get_by_role("button", name="Delete my data").click()
    expect(page.locator("#notice")).to_have_text(
        "Your data has been deleted: 1 session, 1 answer. Thank you for your time."
    )
    expect(header(page)).to_have_text("Welcome")
    expect(page.locator("#data-step")).to_be_hidden()
    assert rows(db, "SELECT id FROM sessions") == [] and rows(db, "SELECT id FROM responses") == []
    assert page.evaluate("localStorage.getItem('guestKey')") is None
    page.reload()  # nothing of the withdrawn visitor comes back
    expect(header(page)).to_have_text("Welcome")
    page.get_by_role("button", name="Start").click()  # a new start is a new visitor: numbers are never reused
    expect(header(page)).to_have_text("Visitor #2")
    expect(progress(page)).to_have_text("Question 1 of 3")


@in_chromium
def test_an_error_answer_shows_as_a_sentence(stack, api, db, page):
    from playwright.sync_api import expect

    page.goto(stack.env()["FUNCTIONS_URL"] + "/")
    page.evaluate("localStorage.setItem('guestKey', 'too-short')")
    page.get_by_role("button", name="Start").click()
    expect(page.locator("#error")).to_be_visible()
    expect(page.locator("#error")).to_have_attribute("data-code", "invalid_argument")
    expect(page.locator("#error")).not_to_contain_text("(invalid_argument)")
    expect(page.locator("#error")).to_have_text(re.compile(r"^[A-Z].+[.!?]$"))
    expect(header(page)).to_have_text("Welcome")


@in_chromium
def test_the_pages_edges(stack, api, db, auth_emulator, page):
    """One assertion each: counts in words, a history that follows the answers, no 404 on load,
    Firebase Auth errors as sentences, no stale error beside the browser's own refusal, sign-out."""
    from playwright.sync_api import expect

    failed = []
    page.on("response", lambda response: failed.append(response.url) if response.status >= 400 else None)
    existing = auth_emulator.new_user()
    page.goto(stack.env()["FUNCTIONS_URL"] + "/")
    page.get_by_role("button", name="Start").click()
    expect(page.locator("#history li")).to_have_text([re.compile(r"^Started .+ • 0 answers$")])
    answer(page, "blue")
    expect(page.locator("#history li")).to_have_text([re.compile(r"^Started .+ • 1 answer$")])  # not "1 answers"
    for text in ("Lyon", "toast"):
        answer(page, text)
    expect(page.locator("#history li")).to_have_text([re.compile(r"^Started .+ • 3 answers$")])
    saved(page)
    assert failed == []  # the favicon included

    page.get_by_label("Email").fill(existing.email)
    page.get_by_label("Password").fill("correct-horse")
    page.get_by_role("button", name="Sign up", exact=True).click()
    expect(page.locator("#error")).to_have_text(
        "Sign-up failed: an account with this email exists already: use \u201cI already have an account\u201d."
    )
    page.get_by_label("Password").fill("abc")  # the browser refuses it (minlength 6) and sends nothing
    page.get_by_role("button", name="Sign up", exact=True).click()
    expect(page.locator("#error")).to_be_hidden()

    page.get_by_label("Email").fill("edge@example.com")
    page.get_by_label("Password").fill("correct-horse")
    page.get_by_role("button", name="Sign up", exact=True).click()
    expect(page.locator("#account")).to_have_text("Signed in as edge@example.com • 1 session migrated")
    page.get_by_role("button", name="Sign out").click()
    expect(header(page)).to_have_text("Welcome")
    expect(page.locator("#account-line")).to_be_hidden()
    expect(page.locator("#history-step")).to_be_hidden()
    page.reload()  # signed out for good, and the old session is not shown as a guest's
    expect(header(page)).to_have_text("Welcome")
    expect(page.get_by_role("button", name="Start")).to_be_enabled()


@pytest.fixture
def functions_with_short_timeouts(stack, tmp_path):
    """The functions with a 1 s statement timeout and Retry-After: 1, on their own port."""
    log = tmp_path / "functions-short.log"
    server = FunctionsServer(
        free_port(), {**stack.env(), "DB_STATEMENT_TIMEOUT_MS": "1000", "RETRY_AFTER_SECONDS": "1"}, log
    ).start()
    yield server, log
    server.stop()


@in_chromium
def test_an_answer_not_yet_stored_at_a_reload_is_sent_by_the_reloaded_page(db, page, functions_with_short_timeouts):
    """The responses table locked against writes (submit_response answers 503, the keepalive send on
    leaving too) while the second answer is given and the page reloaded: the reloaded page finds
    the answer in the package's outbox, resumes the session and sends it once the lock is gone."""
    from playwright.sync_api import expect
    from sqlalchemy import text

    server, _ = functions_with_short_timeouts
    page.goto(f"{server.url}/")
    page.get_by_role("button", name="Start").click()
    answer(page, "blue")
    saved(page)
    with db.connect() as conn:  # reads go on (get_visitor after the reload), writes wait and time out
        transaction = conn.begin()
        conn.execute(text("LOCK TABLE responses IN SHARE MODE"))
        answer(page, "Lyon")
        expect(page.locator("#saving")).to_contain_text("Not saved yet: 1 answer kept in this browser")
        page.reload()
        expect(progress(page)).to_have_text("Question 3 of 3")
        expect(page.locator("#saving")).to_contain_text("1 answer kept in this browser")  # resumed, still waiting
        transaction.rollback()
    saved(page)
    assert [r.answer for r in rows(db, "SELECT data->>'answer' AS answer FROM responses ORDER BY level")] == [
        "blue",
        "Lyon",
    ]
    assert len(rows(db, "SELECT id FROM sessions")) == 1


@in_chromium
def test_a_503_is_tried_again_with_the_same_session_id(db, page, functions_with_short_timeouts):
    from playwright.sync_api import expect
    from sqlalchemy import text

    server, log = functions_with_short_timeouts
    page.goto(f"{server.url}/")
    with db.connect() as conn:  # the sessions table locked: create_session waits, then times out with 503
        transaction = conn.begin()
        conn.execute(text("LOCK TABLE sessions IN ACCESS EXCLUSIVE MODE"))
        page.get_by_role("button", name="Start").click()
        wait_until(lambda: "answered unavailable" in log.read_text(), "create_session to answer 503", timeout=30)
        transaction.rollback()
    # The package waited Retry-After and sent the same request again, which now succeeds.
    expect(header(page)).to_have_text("Visitor #1")
    expect(page.locator("#error")).to_be_hidden()
    (session,) = rows(db, "SELECT id FROM sessions")
    assert page.evaluate("localStorage.getItem('sessionId')") == str(session.id)
    assert log.read_text().count("answered unavailable") == 1


def test_functions_serve_the_page_and_api_aliases(stack, api, db):
    base = stack.env()["FUNCTIONS_URL"]
    index = requests.get(f"{base}/", timeout=10)
    assert index.status_code == 200 and index.headers["Content-Type"].startswith("text/html")
    assert requests.get(f"{base}/index.html", timeout=10).text == index.text
    assert 'src="build/app.js"' in index.text
    assert requests.get(f"{base}/build/app.js", timeout=10).headers["Content-Type"].startswith("text/javascript")
    # The dev server's settings stand in for the committed production ones.
    assert requests.get(f"{base}/config.json", timeout=10).json() == {
        "functionsUrl": "/api",
        "authEmulatorUrl": f"http://{stack.auth.host}",
        "bucket": BUCKET,
        "anonymousAuth": False,
        "storageEmulatorHost": base.removeprefix("http://"),
    }
    committed = json.loads((ROOT / "public" / "config.json").read_text())  # production: the functions' own URLs
    assert (committed["functionsUrl"], committed["functionsRegion"]) == ("", "europe-west1")
    assert requests.get(f"{base}/__/firebase/init.json", timeout=10).json()["projectId"] == PROJECT
    created = requests.post(f"{base}/api/create_session", json={}, headers={"X-Guest-Key": "k" * 40}, timeout=10)
    assert created.status_code == 201 and created.json()["visitorNumber"] == 1
    assert requests.get(f"{base}/api/no_such_function", timeout=10).status_code == 404
    assert requests.get(f"{base}/../README.md", timeout=10).status_code == 404


def test_the_dev_storage_api_refuses_what_it_does_not_serve_in_the_sdks_error_shape(stack, bucket):
    """devtools/firebase_storage.py answers what the SDK can read ({"error": {"code", "message"}}),
    never a 500, and writes nothing for a request it refuses."""
    base = f"{stack.env()['FUNCTIONS_URL']}/v0/b/{BUCKET}/o"
    refused = [
        (requests.post(f"{base}?name=a.txt", data=b"x", timeout=10), 400),  # not multipart (uploadBytesResumable)
        (
            requests.post(
                f"{base}?name=a.txt",
                data=b"not multipart",
                timeout=10,
                headers={"X-Goog-Upload-Protocol": "multipart", "Content-Type": "multipart/related; b=1"},
            ),
            400,
        ),
        (requests.get(f"{base}/sessions%2Fnone.txt", timeout=10), 404),
        (requests.delete(f"{base}/sessions%2Fnone.txt", timeout=10), 405),
        (requests.get(f"{stack.env()['FUNCTIONS_URL']}/v0/elsewhere", timeout=10), 404),
    ]
    for response, status in refused:
        assert response.status_code == status, response.text
        assert response.headers["Content-Type"] == "application/json"
        assert response.json()["error"]["code"] == status and response.json()["error"]["message"]
    listed = requests.get(f"{stack.storage.url}/storage/v1/b/{BUCKET}/o", timeout=10).json()
    assert listed.get("items", []) == []


# --- the page on another origin than the functions --------------------------


@pytest.fixture
def page_origin(stack):
    """public/ served by a plain static server on its own port (as Firebase Hosting would serve
    it), told where the functions are by its config.json."""
    config = {"functionsUrl": "", "authEmulatorUrl": f"http://{stack.auth.host}", "storageEmulatorHost": ""}
    firebase = {"apiKey": "demo-api-key", "projectId": PROJECT}

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self):
            answers = {"/config.json": config, "/__/firebase/init.json": firebase}
            if self.path in answers:
                body = json.dumps(answers[self.path]).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            else:
                super().do_GET()

        def log_message(self, *args):
            pass

    Handler.extensions_map = {**Handler.extensions_map, ".js": "text/javascript"}
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", free_port()), functools.partial(Handler, directory=str(ROOT / "public"))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    origin = f"http://127.0.0.1:{server.server_address[1]}"
    yield origin, config
    server.shutdown()
    server.server_close()


@pytest.fixture
def functions_allowing(stack, tmp_path, page_origin):
    origin, _ = page_origin
    server = FunctionsServer(
        free_port(), {**stack.env(), "ALLOWED_ORIGINS": origin}, tmp_path / "functions-cors.log"
    ).start()
    yield server
    server.stop()


@in_chromium
def test_another_origin_in_allowed_origins_may_call_the_functions(db, page, page_origin, functions_allowing):
    from playwright.sync_api import expect

    origin, config = page_origin
    config["functionsUrl"] = functions_allowing.url
    page.goto(f"{origin}/")
    page.get_by_role("button", name="Start").click()
    expect(header(page)).to_have_text("Visitor #1")
    expect(page.locator("#error")).to_be_hidden()


@in_chromium
def test_with_a_functions_region_the_page_calls_the_functions_own_urls(db, page, page_origin, functions_allowing):
    """The committed production config (functionsRegion, no functionsUrl): the page calls
    https://REGION-PROJECT.cloudfunctions.net/NAME, not Hosting's /api, so the function sees the
    visitor's address. That host is this machine's functions server here: Playwright hands each such
    request to it unchanged (same method, headers and body), and the browser applies CORS to its answer."""
    from playwright.sync_api import expect

    origin, config = page_origin
    config["functionsUrl"] = ""
    config["functionsRegion"] = "europe-west1"
    production = f"https://europe-west1-{PROJECT}.cloudfunctions.net"
    called = []

    def to_this_machine(route):
        called.append(route.request.url)
        route.fulfill(response=route.fetch(url=route.request.url.replace(production, functions_allowing.url)))

    page.route(f"{production}/**", to_this_machine)
    page.goto(f"{origin}/")
    page.get_by_role("button", name="Start").click()
    expect(header(page)).to_have_text("Visitor #1")
    assert f"{production}/create_session" in called
    assert not any("/api/" in url for url in called)
    assert len(rows(db, "SELECT id FROM sessions")) == 1


@in_chromium
def test_another_origin_not_allowed_sees_the_refusal_as_a_message(stack, api, db, page, page_origin):
    from playwright.sync_api import expect

    origin, config = page_origin
    config["functionsUrl"] = stack.env()["FUNCTIONS_URL"]  # ALLOWED_ORIGINS is only https://study.example.org
    console = []
    page.on("console", lambda message: console.append(message.text))
    page.goto(f"{origin}/")
    page.get_by_role("button", name="Start").click()
    # The participant is told what to do (once the package gave up trying, about half a minute);
    # the likely cause goes to the developer's console.
    expect(page.locator("#error")).to_have_text(
        "The server could not be reached. Check your internet connection, then try again.", timeout=90_000
    )
    expect(page.locator("#error")).to_have_attribute("data-code", "network")
    expect(header(page)).to_have_text("Welcome")
    assert any("refused by CORS" in line and "ALLOWED_ORIGINS" in line for line in console), console
    assert rows(db, "SELECT id FROM sessions") == []
