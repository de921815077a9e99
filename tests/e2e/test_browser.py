"""The reference page of public/ in a real browser: Debian's Chromium driven by Playwright
(the Python package, never a browser download), against the test stack.

`make test` installs Chromium with apt when it is missing on a Debian-like machine where
it runs as root; elsewhere these tests skip and name the packages to install.
"""

from __future__ import annotations

import functools
import http.server
import json
import re
import threading
from pathlib import Path

import pytest

from devtools.ports import free_port
from devtools.stack import FunctionsServer, ROOT
from tests.support import rows

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
TIMEOUT_MS = 20_000


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install the Debian packages chromium and chromium-driver "
                    "(apt-get install chromium chromium-driver) to run the browser tests")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package (requirements-dev.txt)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    context = browser.new_context(viewport={"width": 900, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    yield page
    context.close()


@pytest.fixture
def bridge(stack, bucket, firestore):
    """Storage emulator → on_upload_finalized, as in make dev (empty bucket and Firestore)."""
    bridge = stack.event_bridge(interval=0.2).start()
    yield bridge
    bridge.stop()


def header(page):
    return page.locator("#status")


def test_whole_flow_as_a_guest_who_signs_up(stack, api, db, bridge, page, tmp_path):
    from playwright.sync_api import expect

    page.goto(stack.env()["FUNCTIONS_URL"] + "/")
    expect(page.get_by_role("button", name="Start")).to_be_visible()
    page.get_by_role("button", name="Start").click()
    expect(header(page)).to_have_text("Visitor #1 • Level 1 • 0% Complete")

    for answer, progress in (("blue", "Level 2 • 33% Complete"), ("Lyon", "Level 3 • 67% Complete"),
                             ("toast", "Level 3 • 100% Complete")):
        page.get_by_label(re.compile(r"\?$")).fill(answer)
        page.get_by_role("button", name="Submit answer").click()
        expect(header(page)).to_have_text(f"Visitor #1 • {progress}")
    stored = rows(db, "SELECT level, data->>'answer' AS answer, visitor_number FROM responses ORDER BY level")
    assert [(r.level, r.answer, r.visitor_number) for r in stored] == [(1, "blue", 1), (2, "Lyon", 1),
                                                                       (3, "toast", 1)]

    (session_id,) = [r.id for r in rows(db, "SELECT id::text FROM sessions")]
    upload = tmp_path / "notes.txt"
    upload.write_text("hello from the browser\n")
    page.locator("#file").set_input_files(str(upload))
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("#upload-status")).to_have_text("notes.txt was tagged with:")
    expect(page.locator('#upload-metadata dd[data-key="visitorNumber"]')).to_have_text("1")
    expect(page.locator('#upload-metadata dd[data-key="sessionId"]')).to_have_text(session_id)
    expect(page.locator('#upload-metadata dd[data-key="experimentId"]')).to_have_text("reference-page")

    page.get_by_label("Email").fill("ada@example.com")
    page.get_by_label("Password").fill("correct-horse")
    page.get_by_role("button", name="Sign up").click()
    expect(page.locator("#account")).to_have_text("Signed in as ada@example.com • 1 session migrated")
    expect(header(page)).to_have_text("Visitor #1 • Level 3 • 100% Complete")
    expect(page.locator("#history li")).to_have_text([f"Session {session_id[:8]} • 3 answers"])
    assert page.evaluate("localStorage.getItem('guestKey')") is None
    (user,) = rows(db, "SELECT email, visitor_number FROM users")
    assert (user.email, user.visitor_number) == ("ada@example.com", 1)

    page.reload()
    expect(header(page)).to_have_text("Visitor #1 • Level 3 • 100% Complete")
    expect(page.locator("#account")).to_have_text("Signed in as ada@example.com • 1 session migrated")
    expect(page.locator("#history li")).to_have_text([f"Session {session_id[:8]} • 3 answers"])
    expect(page.locator('#upload-metadata dd[data-key="visitorNumber"]')).to_have_text("1")
    expect(page.locator("#error")).to_be_hidden()
    page.screenshot(path=str(tmp_path / "page.png"), full_page=True)


def test_reload_restores_a_guest(stack, api, db, page):
    from playwright.sync_api import expect

    page.goto(stack.env()["FUNCTIONS_URL"] + "/index.html")
    page.get_by_role("button", name="Start").click()
    expect(header(page)).to_have_text("Visitor #1 • Level 1 • 0% Complete")
    page.get_by_label(re.compile(r"\?$")).fill("green")
    page.get_by_role("button", name="Submit answer").click()
    expect(header(page)).to_have_text("Visitor #1 • Level 2 • 33% Complete")
    page.reload()
    expect(header(page)).to_have_text("Visitor #1 • Level 2 • 33% Complete")
    expect(page.get_by_role("button", name="Start")).to_be_hidden()


def test_an_error_answer_shows_as_a_message(stack, api, db, page):
    from playwright.sync_api import expect

    page.goto(stack.env()["FUNCTIONS_URL"] + "/")
    page.evaluate("localStorage.setItem('guestKey', 'too-short')")
    page.get_by_role("button", name="Start").click()
    expect(page.locator("#error")).to_be_visible()
    expect(page.locator("#error")).to_contain_text("(invalid_argument)")
    expect(header(page)).to_have_text("Welcome")


def test_functions_serve_the_page_and_api_aliases(stack, api, db):
    import requests

    base = stack.env()["FUNCTIONS_URL"]
    index = requests.get(f"{base}/", timeout=10)
    assert index.status_code == 200 and index.headers["Content-Type"].startswith("text/html")
    assert requests.get(f"{base}/index.html", timeout=10).text == index.text
    assert requests.get(f"{base}/app.js", timeout=10).headers["Content-Type"].startswith("text/javascript")
    config = requests.get(f"{base}/config.js", timeout=10).text
    assert '"functionsUrl": "/api"' in config and stack.auth.host in config
    created = requests.post(f"{base}/api/create_session", json={}, headers={"X-Guest-Key": "k" * 40}, timeout=10)
    assert created.status_code == 201 and created.json()["visitorNumber"] == 1
    assert requests.get(f"{base}/api/no_such_function", timeout=10).status_code == 404
    assert requests.get(f"{base}/../README.md", timeout=10).status_code == 404


# --- the page on another origin than the functions --------------------------

@pytest.fixture
def page_origin(stack):
    """public/ served by a plain static server on its own port, told where the functions are."""
    config = {"functionsUrl": "", "authEmulatorUrl": f"http://{stack.auth.host}", "storageUrl": "",
              "bucket": "", "apiKey": "demo-api-key"}

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/config.js":
                body = f"export default {json.dumps(config)};\n".encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/javascript")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            else:
                super().do_GET()

        def log_message(self, *args):
            pass

    Handler.extensions_map = {**Handler.extensions_map, ".js": "text/javascript"}
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()),
                                             functools.partial(Handler, directory=str(ROOT / "public")))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    origin = f"http://127.0.0.1:{server.server_address[1]}"
    yield origin, config
    server.shutdown()
    server.server_close()


@pytest.fixture
def functions_allowing(stack, tmp_path, page_origin):
    origin, _ = page_origin
    server = FunctionsServer(free_port(), {**stack.env(), "ALLOWED_ORIGINS": origin},
                             tmp_path / "functions-cors.log").start()
    yield server
    server.stop()


def test_another_origin_in_allowed_origins_may_call_the_functions(db, page, page_origin, functions_allowing):
    from playwright.sync_api import expect

    origin, config = page_origin
    config["functionsUrl"] = functions_allowing.url
    page.goto(f"{origin}/")
    page.get_by_role("button", name="Start").click()
    expect(header(page)).to_have_text("Visitor #1 • Level 1 • 0% Complete")
    expect(page.locator("#error")).to_be_hidden()


def test_another_origin_not_allowed_sees_the_refusal_as_a_message(stack, api, db, page, page_origin):
    from playwright.sync_api import expect

    origin, config = page_origin
    config["functionsUrl"] = stack.env()["FUNCTIONS_URL"]  # ALLOWED_ORIGINS is only https://study.example.org
    page.goto(f"{origin}/")
    page.get_by_role("button", name="Start").click()
    expect(page.locator("#error")).to_be_visible()
    expect(page.locator("#error")).to_contain_text("refused by CORS")
    expect(header(page)).to_have_text("Welcome")
    assert rows(db, "SELECT id FROM sessions") == []
