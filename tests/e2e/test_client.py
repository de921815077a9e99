"""The client package (client/, SPEC §15) and its jsPsych extension in Debian's Chromium, against
the test stack, from a page on an origin of its own (a study's usual case: GitHub Pages, a
university server) that the functions allow.

`make test` builds client/dist/ and installs the jsPsych 8 and 7.3 of client/test/ (the Makefile's
client target); the browser tests skip as tests/e2e/test_browser.py's do where Chromium is missing.
"""

from __future__ import annotations

import http.server
import json
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy
from sqlalchemy import text

from devtools.ports import free_port
from devtools.postgres import LocalPostgres
from devtools.stack import BUCKET, ROOT, FunctionsServer, migrate
from shared.core.db import plain_engine
from shared.studies.config import parse_config
from tests.e2e.test_browser import CHROMIUM, CHROMIUM_ARGS, TIMEOUT_MS, in_chromium
from tests.support import rows, scalar

CLIENT = ROOT / "client"
DIST = CLIENT / "dist"
JSPSYCH = CLIENT / "test" / "node_modules"
PROLIFIC = "https://app.prolific.com/submissions/complete"
CODE = "C0MPL3TE"

# What the page origin serves besides the pages a test writes: the package's build and the two
# jsPsych versions with the plugin the studies use.
SERVED = {
    "/client/": DIST,
    "/jspsych/8/": JSPSYCH / "jspsych" / "dist",
    "/jspsych/8/css/": JSPSYCH / "jspsych" / "css",
    "/jspsych/8/plugin/": JSPSYCH / "@jspsych" / "plugin-html-keyboard-response" / "dist",
    "/jspsych/7/": JSPSYCH / "jspsych7" / "dist",
    "/jspsych/7/css/": JSPSYCH / "jspsych7" / "css",
    "/jspsych/7/plugin/": JSPSYCH / "jspsych7-plugin-html-keyboard-response" / "dist",
}

BLANK = """<!doctype html><html><head><meta charset="utf-8"><title>client</title>
<script src="/client/visitor-sessions.min.js"></script></head>
<body><p id="state">loaded</p></body></html>"""

# A jsPsych study whose only line about saving is the extension in initJsPsych.
STUDY = """<!doctype html><html><head><meta charset="utf-8"><title>study</title>
<link rel="stylesheet" href="/jspsych/VERSION/css/jspsych.css">
<script src="/jspsych/VERSION/index.browser.min.js"></script>
<script src="/jspsych/VERSION/plugin/index.browser.min.js"></script>
<script src="/client/visitor-sessions.min.js"></script></head><body><script>
const jsPsych = initJsPsych({
  extensions: [
    {type: VisitorSessions.JsPsychExtension, params: {functionsUrl: FUNCTIONS, experimentId: EXPERIMENT, PARAMS}},
  ],
  on_finish: () => { document.title = "finished"; },
});
jsPsych.RUN(Array.from({length: TRIALS}, (_, i) => ({
  type: jsPsychHtmlKeyboardResponse, stimulus: `<p class="trial">Trial ${i}</p>`, choices: [" "], data: DATA,
})));
</script></body></html>"""


class Origin:
    """A static server on a free port: SERVED, and the pages a test puts in `pages` (path -> HTML)."""

    def __init__(self) -> None:
        self.pages: dict[str, str] = {}
        pages = self.pages

        class Handler(http.server.SimpleHTTPRequestHandler):
            def translate_path(self, path):
                path = path.split("?", 1)[0]
                for prefix, directory in sorted(SERVED.items(), key=lambda item: -len(item[0])):
                    if path.startswith(prefix):
                        return str(directory / path[len(prefix) :])
                return str(ROOT / "nothing-here")

            def do_GET(self):
                page = pages.get(self.path.split("?", 1)[0])
                if page is None:
                    return super().do_GET()
                body = page.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        Handler.extensions_map = {**Handler.extensions_map, ".js": "text/javascript"}
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def origin():
    if not (DIST / "visitor-sessions.min.js").exists() or not JSPSYCH.exists():
        pytest.fail(
            "client/dist or client/test/node_modules is missing: run the tests with `make test` (or `make client`)"
        )
    served = Origin()
    served.pages["/blank.html"] = BLANK
    yield served
    served.close()


@pytest.fixture(scope="module")
def functions(stack, origin, tmp_path_factory):
    """The functions, allowing the study's origin (ALLOWED_ORIGINS), as a deployment would."""
    server = FunctionsServer(
        free_port(),
        {**stack.env(), "ALLOWED_ORIGINS": origin.url},
        tmp_path_factory.mktemp("client") / "functions.log",
    ).start()
    yield server.url
    server.stop()


@pytest.fixture(scope="module")
def browser():
    from playwright import sync_api

    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def context(browser):
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    opened = browser.new_context()
    opened.set_default_timeout(TIMEOUT_MS)
    yield opened
    opened.close()


def configure(db: sqlalchemy.Engine, experiment_id: str, **fields) -> dict:
    """An experiments row (what configure_experiment stores), validated by the product's model."""
    document = parse_config({"experimentId": experiment_id, **fields}).to_json()
    with db.begin() as conn:
        conn.execute(text("DELETE FROM experiments WHERE id = :id"), {"id": experiment_id})
        conn.execute(
            text("INSERT INTO experiments (id, config) VALUES (:id, CAST(:config AS jsonb))"),
            {"id": experiment_id, "config": json.dumps(document)},
        )
    return document


def prolific_study(db, experiment_id: str) -> dict:
    return configure(
        db,
        experiment_id,
        platform="prolific",
        conditions=[{"name": "congruent"}, {"name": "incongruent"}],
        outcomes={"completed": {"code": CODE}},
    )


def open_blank(context, origin):
    page = context.new_page()
    page.goto(f"{origin.url}/blank.html")
    return page


START = """async ({functionsUrl, experimentId, participant}) => {
  window.statuses = [];
  try {
    window.study = await VisitorSessions.start({functionsUrl, experimentId, participant});
  } catch (error) {
    return {code: error.code, message: error.message};
  }
  study.addEventListener("status", (event) => statuses.push(event.detail));
  const {sessionId, attempt, condition} = study;
  return {sessionId, attempt, condition, durable: study.status().durable};
}"""


def start(page, functions, experiment_id, participant=None) -> dict:
    return page.evaluate(START, {"functionsUrl": functions, "experimentId": experiment_id, "participant": participant})


def stored(db, session_id: str) -> int:
    return scalar(db, "SELECT count(*) FROM responses WHERE session_id = CAST(:id AS uuid)", id=session_id)


# --- the outbox ---------------------------------------------------------------------------------


@in_chromium
def test_a_tab_closed_with_20_pending_sends_them_when_reopened(db, context, origin, functions):
    """Closed while offline: pagehide's keepalive send may or may not get through (the browser may
    send it after the page and its emulated network are gone); the next start sends the rest, and
    each response is stored once either way."""
    page = open_blank(context, origin)
    first = start(page, functions, "outbox-closed-tab")
    assert first["durable"] is True and first["attempt"] == 1
    context.set_offline(True)
    page.evaluate("async () => { for (let i = 0; i < 20; i++) await study.record({trial: i}, {key: `t${i}`}); }")
    assert page.evaluate("study.pending()") == 20
    page.close()

    context.set_offline(False)
    page = open_blank(context, origin)
    again = start(page, functions, "outbox-closed-tab")
    assert (again["sessionId"], again["attempt"]) == (first["sessionId"], 2)
    page.evaluate("study.flush()")
    assert page.evaluate("study.pending()") == 0
    stored_rows = rows(db, "SELECT data FROM responses ORDER BY created_at")
    assert sorted(r.data["trial"] for r in stored_rows) == list(range(20))
    assert scalar(db, "SELECT count(*) FROM sessions") == 1


@in_chromium
def test_503_and_429_are_tried_again_after_their_retry_after(db, context, origin, functions):
    page = open_blank(context, origin)
    session = start(page, functions, "outbox-retry-after")
    answers = [(503, "unavailable", 2), (429, "resource_exhausted", 1)]
    seen: list[tuple[float, str]] = []

    def refuse_twice(route):
        if route.request.method != "POST":
            return route.continue_()
        seen.append((time.monotonic(), "refused" if answers else "passed"))
        if not answers:
            return route.continue_()
        status, code, seconds = answers.pop(0)
        route.fulfill(
            status=status,
            headers={
                "Access-Control-Allow-Origin": origin.url,
                "Access-Control-Expose-Headers": "Retry-After",  # as the functions' answers do
                "Retry-After": str(seconds),
            },
            content_type="application/json",
            body=json.dumps({"error": {"code": code, "message": "try later"}}),
        )

    page.route(f"{functions}/submit_response", refuse_twice)
    page.evaluate("study.record({answer: 'blue'}, {key: 'q1'})")
    page.evaluate("study.flush()")
    assert [what for _, what in seen] == ["refused", "refused", "passed"]
    # Each try again came no sooner than the Retry-After of the answer before it (a lower bound
    # only: the machine's load can make it later, never earlier).
    assert seen[1][0] - seen[0][0] >= 2 - 0.05
    assert seen[2][0] - seen[1][0] >= 1 - 0.05
    waits = page.evaluate("statuses.filter((s) => s.waitingSince !== null).map((s) => s.lastError.code)")
    assert "unavailable" in waits and "resource_exhausted" in waits
    assert page.evaluate("study.status()")["waitingSince"] is None
    assert stored(db, session["sessionId"]) == 1


@in_chromium
def test_a_response_the_server_refuses_is_set_aside_and_the_rest_goes_on(db, context, origin, functions):
    page = open_blank(context, origin)
    session = start(page, functions, "outbox-set-aside")
    # level must be an integer >= 0 (SPEC §4): the server refuses the second item with its index.
    page.evaluate(
        """async () => {
        await study.record({n: 1}, {key: 'a'});
        await study.record({n: 2}, {key: 'b', level: -1});
        await study.record({n: 3}, {key: 'c'});
        await study.flush();
    }"""
    )
    assert sorted(r.data["n"] for r in rows(db, "SELECT data FROM responses")) == [1, 3]
    status = page.evaluate("study.status()")
    assert (status["pending"], status["rejected"], status["lastError"]["code"]) == (0, 1, "invalid_argument")
    assert stored(db, session["sessionId"]) == 2


@in_chromium
def test_record_refuses_what_is_not_json_or_too_large_at_once(db, context, origin, functions):
    page = open_blank(context, origin)
    start(page, functions, "outbox-refusals")
    codes = page.evaluate(
        """async () => {
        const codes = [];
        const cyclic = {}; cyclic.self = cyclic;
        for (const data of [cyclic, undefined, {big: 'x'.repeat(70000)}]) {
          try { await study.record(data); codes.push(null); } catch (error) { codes.push(error.code); }
        }
        return {codes, pending: study.pending()};
    }"""
    )
    assert codes == {"codes": ["invalid_argument", "invalid_argument", "payload_too_large"], "pending": 0}


@in_chromium
def test_complete_while_the_server_holds_fewer_sends_the_rest_first(db, context, origin, functions):
    """The first batch is answered 201 by a fault in the middle without reaching the server (lost
    in flight): complete() meets 409 incomplete, sends everything again, then completes."""
    page = open_blank(context, origin)
    prolific_study(db, "complete-incomplete")
    session = start(page, functions, "complete-incomplete", {"participantId": "p-incomplete", "studyId": "s1"})
    calls: list[str] = []
    lost = []

    def lose_the_first_batch(route):
        if route.request.method != "POST":
            return route.continue_()
        calls.append(route.request.url.rsplit("/", 1)[1])
        if calls[-1] == "submit_response" and not lost:
            lost.append(route.request.post_data_json)
            return route.fulfill(
                status=201,
                headers={"Access-Control-Allow-Origin": origin.url},
                content_type="application/json",
                body=json.dumps({"responses": []}),
            )
        route.continue_()

    page.route(f"{functions}/*", lose_the_first_batch)
    page.evaluate(
        "async () => { for (let i = 0; i < 10; i++) await study.record({i}, {key: `k${i}`}); await study.flush(); }"
    )
    assert stored(db, session["sessionId"]) < 10
    result = page.evaluate("study.complete()")
    # complete() resolved: the server held all ten, and only then answered with the redirect.
    assert stored(db, session["sessionId"]) == 10
    assert result == {"redirectUrl": f"{PROLIFIC}?cc={CODE}", "completionCode": CODE}
    assert calls.count("complete_session") == 2  # 409 incomplete, then 201
    assert calls.index("complete_session") < len(calls) - 1 - calls[::-1].index("submit_response")
    assert scalar(db, "SELECT outcome FROM sessions") == "completed"


# --- refusals ---------------------------------------------------------------------------------


@in_chromium
def test_refusals_reach_the_page_with_their_code(db, context, origin, functions, api):
    configure(db, "refused-closed", active=False)
    configure(db, "refused-full", maxParticipants=1)
    configure(db, "refused-again")
    page = open_blank(context, origin)
    assert start(page, functions, "refused-closed")["code"] == "study_closed"

    page.evaluate("localStorage.setItem('guestKey', 'another-guest-of-this-browser-0001')")
    assert "sessionId" in start(page, functions, "refused-full")
    page.evaluate("localStorage.setItem('guestKey', 'another-guest-of-this-browser-0002')")
    assert start(page, functions, "refused-full")["code"] == "study_full"

    done = start(page, functions, "refused-again")
    page.evaluate("study.complete()")
    page = open_blank(context, origin)
    refused = start(page, functions, "refused-again")
    assert refused["code"] == "already_participated", refused
    assert done["sessionId"] != refused.get("sessionId")


@in_chromium
def test_the_extension_shows_a_refusal_with_what_to_do(db, context, origin, functions):
    configure(db, "refused-jspsych", active=False, platform="prolific", outcomes={"completed": {"code": CODE}})
    origin.pages["/refused.html"] = study_page(8, functions, "refused-jspsych", 3)
    page = context.new_page()
    page.goto(f"{origin.url}/refused.html?PROLIFIC_PID=p-refused&STUDY_ID=s1&SESSION_ID=x1")
    from playwright.sync_api import expect

    refusal = page.locator(".visitor-sessions-refused")
    expect(refusal).to_have_attribute("data-code", "study_closed")
    expect(refusal).to_contain_text("closed")
    expect(refusal).to_contain_text("return the study on Prolific")
    assert scalar(db, "SELECT count(*) FROM sessions") == 0


@in_chromium
def test_a_page_on_an_origin_not_allowed_hears_about_allowed_origins(db, context, origin, stack):
    page = open_blank(context, origin)
    failure = start(page, stack.env()["FUNCTIONS_URL"], "not-allowed")  # ALLOWED_ORIGINS is another one
    assert failure["code"] == "network"
    assert "refused by CORS?" in failure["message"] and "ALLOWED_ORIGINS" in failure["message"]


# --- jsPsych ---------------------------------------------------------------------------------


def study_page(
    version: int, functions: str, experiment_id: str, trials: int, params: str = "", run: str = "run", data: str = "{}"
) -> str:
    """STUDY for jsPsych `version`; `params`: more of the extension's params (JavaScript); `run`:
    jsPsych's run or simulate; `data`: each trial's data parameter (JavaScript)."""
    return (
        STUDY.replace("VERSION", str(version))
        .replace("FUNCTIONS", json.dumps(functions))
        .replace("EXPERIMENT", json.dumps(experiment_id))
        .replace("PARAMS", params)
        .replace("RUN", run)
        .replace("TRIALS", str(trials))
        .replace("DATA", data)
    )


@pytest.mark.parametrize("version", [8, 7])
@in_chromium
def test_a_jspsych_study_offline_then_reloaded_stores_every_attempt_before_the_redirect(
    db, context, origin, functions, version
):
    from playwright.sync_api import expect

    experiment = f"jspsych-{version}"
    prolific_study(db, experiment)
    origin.pages[f"/study{version}.html"] = study_page(version, functions, experiment, 30)
    at_redirect: list[tuple[int, object]] = []

    def prolific(route):
        # The moment the browser asks for Prolific's completion URL: what the server holds then.
        at_redirect.append(
            (
                scalar(db, "SELECT count(*) FROM responses"),
                scalar(db, "SELECT completed_at IS NOT NULL FROM sessions"),
            )
        )
        route.fulfill(status=200, content_type="text/html", body="<p id='prolific'>Prolific</p>")

    context.route(f"{PROLIFIC}*", prolific)
    page = context.new_page()
    page.goto(f"{origin.url}/study{version}.html?PROLIFIC_PID=p-{version}&STUDY_ID=study1&SESSION_ID=sub1")
    trial = page.locator(".trial")
    for index in range(15):
        expect(trial).to_have_text(f"Trial {index}")
        if index == 8:
            context.set_offline(True)
        page.keyboard.press("Space")
    expect(trial).to_have_text("Trial 15")
    context.set_offline(False)
    condition = page.evaluate("jsPsych.extensions['visitor-sessions'].started.then((study) => study.condition)")
    page.reload()  # jsPsych starts the timeline again: attempt 2
    for index in range(30):
        expect(trial).to_have_text(f"Trial {index}")
        page.keyboard.press("Space")
    expect(page.locator("#prolific")).to_be_visible()

    assert at_redirect == [(45, True)]
    (session,) = rows(db, "SELECT id, condition, outcome FROM sessions")
    assert (session.condition, session.outcome) == (condition, "completed")
    assert condition in ("congruent", "incongruent")
    stored_rows = rows(
        db,
        "SELECT (data->>'attempt')::int AS attempt, (data->>'trial_index')::int AS trial FROM responses "
        "ORDER BY attempt, trial",
    )
    assert [(r.attempt, r.trial) for r in stored_rows] == [(1, i) for i in range(15)] + [(2, i) for i in range(30)]


# --- the package as a user installs it --------------------------------------------------------


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """client/ packed by `npm pack` (its prepack builds it) and installed from the tarball into an
    empty folder with `npm install ./….tgz`, as a study's author would."""
    work = tmp_path_factory.mktemp("installed")
    npm = shutil.which("npm")
    assert npm, "npm is needed"
    # A copy of client/ without its build (the prepack makes it), beside its dev dependencies.
    source = work / "client"
    shutil.copytree(CLIENT, source, ignore=shutil.ignore_patterns("node_modules", "dist", "test", "*.tgz"))
    (source / "node_modules").symlink_to(CLIENT / "node_modules")
    packed = subprocess.run(
        [npm, "pack", "--pack-destination", str(work), "--json"], cwd=source, check=True, capture_output=True, text=True
    )
    tarball = json.loads(packed.stdout)[0]["filename"]
    consumer = work / "consumer"
    consumer.mkdir()
    subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--offline", f"../{tarball}"],
        cwd=consumer,
        check=True,
        capture_output=True,
    )
    return consumer


def test_the_packed_package_holds_its_builds_and_imports_by_name(installed):
    package = installed / "node_modules" / "@visitor-sessions" / "client"
    manifest = json.loads((package / "package.json").read_text())
    assert manifest.get("dependencies") in (None, {})
    for name in (manifest["unpkg"], manifest["module"], manifest["types"], "README.md"):
        assert (package / name).is_file(), name
    imported = subprocess.run(
        [
            "node",
            "--input-type=module",
            "-e",
            "import * as c from '@visitor-sessions/client'; console.log(JSON.stringify(["
            "typeof c.start, typeof c.fromUrl, typeof c.JsPsychExtension, "
            "c.uuidV5('6ba7b810-9dad-11d1-80b4-00c04fd430c8', 'python.org'),"
            "c.fromUrl('https://x.org/?PROLIFIC_PID=p&STUDY_ID=s&SESSION_ID=x'),"
            "c.fromUrl('https://x.org/?workerId=w&assignmentId=a&hitId=h&turkSubmitTo=https%3A%2F%2Fwww.mturk.com'),"
            "c.fromUrl('https://x.org/?assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE&hitId=h'),"
            "c.fromUrl('https://x.org/?survey_code=123', {sonaParameter: 'survey_code'}),"
            "c.fromUrl('https://x.org/?survey_code=123')]))",
        ],
        cwd=installed,
        check=True,
        capture_output=True,
        text=True,
    )
    assert json.loads(imported.stdout) == [
        "function",
        "function",
        "function",
        "886313e1-3b8a-5372-9b90-0c9aee199e5d",  # uuid.uuid5(uuid.NAMESPACE_DNS, "python.org")
        {"participantId": "p", "studyId": "s", "submissionId": "x"},
        {"participantId": "w", "assignmentId": "a", "hitId": "h", "turkSubmitTo": "https://www.mturk.com"},
        {"preview": True},
        {"participantId": "123"},
        None,  # SONA's code is read only under the parameter the page names
    ]


def test_the_declarations_compile_in_a_typescript_consumer(installed):
    (installed / "consumer.ts").write_text(
        """import { start, fromUrl, JsPsychExtension, ApiError } from "@visitor-sessions/client";
import type { Study, Status } from "@visitor-sessions/client";

async function run(): Promise<string | null> {
  const participant = fromUrl(location.href);
  const study: Study = await start({ functionsUrl: "/api", experimentId: "stroop", participant });
  study.addEventListener("status", (event) => {
    const status: Status = (event as CustomEvent<Status>).detail;
    console.log(status.pending, status.durable, status.waitingSince, status.lastError?.code);
  });
  await study.record({ rt: 512 }, { key: "1:0", level: 1 });
  const { redirectUrl } = await study.complete({ outcome: "completed" });
  return redirectUrl;
}
const extension = { type: JsPsychExtension, params: { functionsUrl: "/api", experimentId: "stroop" } };
export { run, extension, ApiError };
"""
    )
    (installed / "tsconfig.json").write_text(
        json.dumps(
            {
                "compilerOptions": {
                    "strict": True,
                    "noEmit": True,
                    "target": "es2022",
                    "module": "es2022",
                    "moduleResolution": "bundler",
                    "lib": ["es2022", "dom"],
                },
                "files": ["consumer.ts"],
            }
        )
    )
    tsc = CLIENT / "node_modules" / "typescript" / "bin" / "tsc"
    checked = subprocess.run(["node", str(tsc), "-p", "."], cwd=installed, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # The check can fail: a wrong type in the consumer is reported.
    (installed / "consumer.ts").write_text(
        'import { start } from "@visitor-sessions/client";\nstart({ experimentId: 1 });\n'
    )
    assert subprocess.run(["node", str(tsc), "-p", "."], cwd=installed, capture_output=True).returncode != 0


@in_chromium
def test_the_installed_package_works_as_a_module_and_as_a_script(db, context, origin, functions, installed):
    package = installed / "node_modules" / "@visitor-sessions" / "client"
    manifest = json.loads((package / "package.json").read_text())
    SERVED["/installed/"] = package
    origin.pages["/module.html"] = f"""<!doctype html><meta charset="utf-8"><script type="module">
import {{ start }} from "/installed/{manifest["module"].removeprefix("./")}";
window.study = await start({{functionsUrl: {json.dumps(functions)}, experimentId: "installed-module"}});
await study.record({{how: "module"}}, {{key: "m"}});
await study.flush();
document.title = "module done";
</script>"""
    origin.pages["/script.html"] = f"""<!doctype html><meta charset="utf-8">
<script src="/installed/{manifest["unpkg"].removeprefix("./")}"></script><script>
VisitorSessions.start({{functionsUrl: {json.dumps(functions)}, experimentId: "installed-script"}})
  .then((study) => study.record({{how: "script"}}, {{key: "s"}}).then(() => study.flush()))
  .then(() => {{ document.title = "script done"; }});
</script>"""
    try:
        for name in ("module", "script"):
            page = context.new_page()
            page.goto(f"{origin.url}/{name}.html")
            page.wait_for_function(f"document.title === '{name} done'")
    finally:
        SERVED.pop("/installed/")
    assert sorted(r.data["how"] for r in rows(db, "SELECT data FROM responses")) == ["module", "script"]
    assert Path(package / "dist" / "visitor-sessions.min.js").stat().st_size < 64 * 1024


@in_chromium
def test_an_mturk_preview_runs_the_study_and_calls_nothing(db, context, origin, functions):
    from playwright.sync_api import expect

    origin.pages["/preview.html"] = study_page(8, functions, "mturk-preview", 2)
    called: list[str] = []
    context.on("request", lambda request: called.append(request.url) if request.url.startswith(functions) else None)
    page = context.new_page()
    page.goto(f"{origin.url}/preview.html?assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE&hitId=h1&turkSubmitTo=x")
    for index in range(2):
        expect(page.locator(".trial")).to_have_text(f"Trial {index}")
        page.keyboard.press("Space")
    page.wait_for_function("document.title === 'finished'")
    assert page.evaluate("jsPsych.extensions['visitor-sessions'].started.then((study) => study.preview)") is True
    assert called == []
    assert scalar(db, "SELECT count(*) FROM sessions") == 0


@in_chromium
def test_enabled_false_lets_jspsych_simulate_without_a_call(db, context, origin, functions):
    origin.pages["/simulate.html"] = study_page(8, functions, "simulated", 5, params="enabled: false", run="simulate")
    called: list[str] = []
    context.on("request", lambda request: called.append(request.url) if request.url.startswith(functions) else None)
    page = context.new_page()
    page.goto(f"{origin.url}/simulate.html")
    page.wait_for_function("document.title === 'finished'")
    assert page.evaluate("jsPsych.data.get().count()") == 5
    assert called == []
    assert scalar(db, "SELECT count(*) FROM sessions") == 0


@in_chromium
def test_a_trial_over_the_limit_is_stored_with_its_large_values_omitted_and_the_outcome_is_the_pages(
    db, context, origin, functions
):
    from playwright.sync_api import expect

    origin.pages["/large.html"] = study_page(
        8,
        functions,
        "large-trials",
        2,
        params="redirect: false, outcome: (data) => `screened_${data.count()}`",
        data="{blob: 'x'.repeat(70000), small: i}",
    )
    page = context.new_page()
    page.goto(f"{origin.url}/large.html")
    for index in range(2):
        expect(page.locator(".trial")).to_have_text(f"Trial {index}")
        page.keyboard.press("Space")
    expect(page.locator(".visitor-sessions-saved")).to_be_visible()
    stored_rows = rows(db, "SELECT data FROM responses ORDER BY (data->>'trial_index')::int")
    assert [r.data["blob"] for r in stored_rows] == [{"omitted": "too large", "bytes": 70002}] * 2
    assert [(r.data["small"], r.data["attempt"]) for r in stored_rows] == [(0, 1), (1, 1)]
    assert scalar(db, "SELECT outcome FROM sessions") == "screened_2"  # params.outcome(jsPsych's data)
    assert page.evaluate("jsPsych.extensions['visitor-sessions'].started.then((s) => s.status().lastError.code)") == (
        "too_large"
    )


# --- uploads --------------------------------------------------------------------------------

FIREBASE_ENTRY = """export { initializeApp } from "firebase/app";
export { getStorage, connectStorageEmulator, ref, uploadBytes } from "firebase/storage";
"""


@pytest.fixture(scope="module")
def firebase_storage_sdk(tmp_path_factory) -> bytes:
    """The Firebase JS SDK's app and storage parts (the root's node_modules, as the page's bundle
    takes them), bundled for a <script> tag as the global FirebaseSdk."""
    work = tmp_path_factory.mktemp("firebase-sdk")
    subprocess.run(  # the entry on stdin: esbuild resolves its imports from cwd, the repository
        [
            str(ROOT / "node_modules" / ".bin" / "esbuild"),
            "--bundle",
            "--format=iife",
            "--global-name=FirebaseSdk",
            f"--outfile={work / 'sdk.js'}",
            "--log-level=warning",
        ],
        input=FIREBASE_ENTRY,
        text=True,
        cwd=ROOT,
        check=True,
    )
    return (work / "sdk.js").read_bytes()


def serve_on_the_functions_origin(context, functions: str, pages: dict[str, bytes]) -> None:
    """SERVED and `pages` (path -> bytes) at the functions' own URL, as make dev serves pages beside
    them: there the dev server also speaks the Firebase Storage API that the SDK uploads through."""

    def fulfill(route):
        path = route.request.url[len(functions) :].split("?", 1)[0]
        if path in pages:
            return route.fulfill(status=200, content_type="text/html", body=pages[path])
        for prefix, directory in sorted(SERVED.items(), key=lambda item: -len(item[0])):
            if path.startswith(prefix) and (directory / path[len(prefix) :]).is_file():
                file = directory / path[len(prefix) :]
                kind = "text/css" if file.suffix == ".css" else "text/javascript"
                return route.fulfill(status=200, content_type=kind, body=file.read_bytes())
        route.continue_()

    for prefix in (*SERVED, *pages):
        context.route(f"{functions}{prefix}*", fulfill)


@in_chromium
def test_an_upload_resolves_once_recorded_and_complete_waits_for_it(
    stack, db, bucket, firestore, context, functions, firebase_storage_sdk
):
    """The page on the functions' own origin (as make dev serves pages), where the dev server also
    speaks the Firebase Storage API the SDK uploads through; the storage trigger fed by the bridge."""
    page_html = BLANK.replace("</head>", '<script src="/firebase-sdk.js"></script></head>')
    serve_on_the_functions_origin(context, functions, {"/upload.html": page_html.encode()})
    context.route(
        f"{functions}/firebase-sdk.js",
        lambda route: route.fulfill(status=200, content_type="text/javascript", body=firebase_storage_sdk),
    )
    bridge = stack.event_bridge(interval=0.2).start()
    try:
        page = context.new_page()
        page.goto(f"{functions}/upload.html")
        configure(db, "uploads-study")
        session = start(page, functions, "uploads-study")
        port = functions.rsplit(":", 1)[1]
        result = page.evaluate(
            """async ({bucket, port}) => {
            const {initializeApp, getStorage, connectStorageEmulator, ref, uploadBytes} = FirebaseSdk;
            const app = initializeApp({apiKey: "demo-api-key", projectId: "demo-visitors", storageBucket: bucket});
            const storage = getStorage(app);
            connectStorageEmulator(storage, "127.0.0.1", Number(port));
            await study.record({before: "upload"}, {key: "a"});
            const file = new Blob(["hello"], {type: "text/plain"});
            const uploaded = study.upload(file, "notes.txt", {storage: {storage, ref, uploadBytes}});
            const completion = await study.complete();  // waits for the upload in flight
            return {upload: await uploaded, completion};
        }""",
            {"bucket": BUCKET, "port": port},
        )
    finally:
        bridge.stop()
    assert result["upload"]["name"] in ("notes.txt", f"sessions/{session['sessionId']}/notes.txt")
    assert result["upload"]["size"] == 5
    assert result["completion"] == {"redirectUrl": None, "completionCode": None}
    recorded = rows(db, "SELECT session_id::text AS session, name FROM uploads")
    assert [r.session for r in recorded] == [session["sessionId"]]
    assert scalar(db, "SELECT outcome FROM sessions") == "completed"


# --- the example study ----------------------------------------------------------------------

EXAMPLE = ROOT / "examples" / "jspsych"


@in_chromium
def test_the_example_study_runs_under_the_dev_server_and_redirects_to_prolific(db, context, functions):
    """examples/jspsych/ as docs/jspsych.md runs it: its experiment.json configured, the page at
    /examples/jspsych/ of the functions' server (devtools.serve, as make dev), Prolific's parameters."""
    from playwright.sync_api import expect

    if not (EXAMPLE / "public" / "build" / "study.js").exists():
        pytest.fail("examples/jspsych/public/build is missing: run the tests with `make test` (or `make example`)")
    document = json.loads((EXAMPLE / "experiment.json").read_text())
    configure(db, document.pop("experimentId"), **document)
    redirected: list[str] = []

    def prolific(route):
        redirected.append(route.request.url)
        route.fulfill(status=200, body="Prolific")

    context.route(f"{PROLIFIC}*", prolific)
    page = context.new_page()
    page.goto(f"{functions}/examples/jspsych/?PROLIFIC_PID=demo-participant&STUDY_ID=demo-study&SESSION_ID=demo-1")
    page.get_by_role("button", name="Start").click()
    for _ in range(6):
        expect(page.locator(".word")).to_be_visible()
        page.keyboard.press("r")
    expect(page.locator("#saving")).to_have_text("All answers saved")
    page.get_by_role("button", name="Finish").click()
    page.wait_for_url(f"{PROLIFIC}*")

    assert redirected == [f"{PROLIFIC}?cc=EXAMPLE1"]
    (session,) = rows(db, "SELECT condition, outcome FROM sessions")
    assert session.outcome == "completed" and session.condition in ("congruent", "incongruent")
    stored_rows = rows(db, "SELECT data FROM responses ORDER BY created_at")
    assert len(stored_rows) == 8  # the instructions, six words, the end
    assert {r.data["condition"] for r in stored_rows} == {session.condition}


# --- a fault in the middle ------------------------------------------------------------------


@in_chromium
def test_the_database_stopped_for_10_s_in_the_middle_of_a_study_loses_nothing(stack, tmp_path, context, origin):
    """A PostgreSQL and a functions server of this test alone, so that stopping it harms no other."""
    postgres = LocalPostgres(tmp_path / "pg", fast=True).start()
    migrate(postgres.url)
    server = FunctionsServer(
        free_port(),
        {**stack.env(), "DATABASE_URL": postgres.url, "ALLOWED_ORIGINS": origin.url},
        tmp_path / "functions.log",
    ).start()
    reader = plain_engine(postgres.url, poolclass=sqlalchemy.pool.NullPool)
    try:
        page = open_blank(context, origin)
        session = start(page, server.url, "database-stopped")
        record = "async ([from, to]) => { for (let i = from; i < to; i++) await study.record({i}, {key: `k${i}`}); }"
        page.evaluate(record, [0, 10])
        page.evaluate("study.flush()")
        postgres.stop()
        stopped = time.monotonic()
        page.evaluate(record, [10, 20])  # resolves at once: the trials are in the outbox
        page.wait_for_function("statuses.some((s) => s.waitingSince !== null && s.lastError?.code === 'unavailable')")
        assert page.evaluate("study.pending()") == 10
        time.sleep(max(0.0, 10 - (time.monotonic() - stopped)))  # the outage the issue names: 10 s
        postgres.start()
        page.evaluate("study.flush()")
        status = page.evaluate("study.status()")
        assert (status["pending"], status["waitingSince"], status["lastError"]) == (0, None, None)
        stored_rows = rows(
            reader, "SELECT data FROM responses WHERE session_id = CAST(:id AS uuid)", id=session["sessionId"]
        )
        assert sorted(r.data["i"] for r in stored_rows) == list(range(20))
    finally:
        reader.dispose()
        server.stop()
        postgres.destroy()


@in_chromium
def test_api_calls_other_functions_with_the_same_credentials(db, context, origin, functions):
    page = open_blank(context, origin)
    session = start(page, functions, "api-calls")
    answer = page.evaluate(
        """async (url) => {
        await study.record({a: 1}, {key: 'a'});
        await study.flush();
        const api = new VisitorSessions.Api(url, {});
        const visitor = await api.call("get_visitor", undefined, {query: {unused: ["x", "y"]}});
        let refused = null;
        try {
          await api.call("submit_response", {sessionId: study.sessionId, responses: []});
        } catch (error) {
          refused = {name: error.name, code: error.code, status: error.status};
        }
        return {sessions: visitor.sessions.map((s) => [s.sessionId, s.responseCount]), refused};
    }""",
        functions,
    )
    assert answer["sessions"] == [[session["sessionId"], 1]]
    assert answer["refused"] == {"name": "ApiError", "code": "invalid_argument", "status": 400}


@in_chromium
def test_an_expired_id_token_is_fetched_again_and_the_study_goes_on(db, context, origin, functions, auth_emulator):
    """A signed-in participant whose ID token expired (Firebase's last an hour): each call answered
    401 asks getIdToken for a fresh one (refresh: true) and is made again; nothing falls back to a
    guest. Api.download takes the same path."""
    user = auth_emulator.new_user()
    now = int(time.time())
    expired = auth_emulator.crafted_token(user.uid, iat=now - 3700, auth_time=now - 3700, exp=now - 100)
    page = open_blank(context, origin)
    answer = page.evaluate(
        """async ({functionsUrl, expired, fresh}) => {
        const asked = [];
        let token = expired;
        const getIdToken = (refresh) => {
          asked.push(Boolean(refresh));
          if (refresh) token = fresh;
          return token;
        };
        const study = await VisitorSessions.start({functionsUrl, experimentId: "token-refresh", getIdToken});
        token = expired;  // and again before each call below
        await study.record({trial: 1}, {key: "t1"});
        await study.flush();
        token = expired;
        const {blob, filename} = await new VisitorSessions.Api(functionsUrl, {getIdToken}).download("export_my_data");
        const mine = JSON.parse(await blob.text());
        return {asked, sessionId: study.sessionId, lastError: study.status().lastError, filename,
                exported: mine.sessions.map((s) => s.sessionId)};
    }""",
        {"functionsUrl": functions, "expired": expired, "fresh": user.id_token},
    )
    assert answer["asked"] == [False, True] * 3  # create_session, submit_response, export_my_data
    assert answer["lastError"] is None
    assert answer["filename"] == "my-data.json" and answer["exported"] == [answer["sessionId"]]
    session = rows(db, "SELECT user_id, guest_id FROM sessions")
    assert [(s.user_id, s.guest_id) for s in session] == [(user.uid, None)]
    assert stored(db, answer["sessionId"]) == 1


@in_chromium
def test_without_indexeddb_the_outbox_lives_in_memory_and_says_so(db, context, origin, functions):
    """As in a third-party iframe or a private mode where the browser refuses IndexedDB."""
    context.add_init_script(
        "Object.defineProperty(window, 'indexedDB', {get() { throw new DOMException('refused', 'SecurityError'); }});"
    )
    page = open_blank(context, origin)
    session = start(page, functions, "no-indexeddb")
    assert session["durable"] is False
    page.evaluate("async () => { await study.record({n: 1}, {key: 'a'}); await study.flush(); }")
    assert stored(db, session["sessionId"]) == 1


@in_chromium
def test_a_trial_over_the_limit_is_uploaded_when_the_page_passes_storage(
    stack, db, bucket, firestore, context, functions, firebase_storage_sdk
):
    from playwright.sync_api import expect

    storage = (
        "storage: (() => { const {initializeApp, getStorage, connectStorageEmulator, ref, uploadBytes} = FirebaseSdk;"
        f" const storage = getStorage(initializeApp({{projectId: 'demo-visitors', storageBucket: '{BUCKET}',"
        " apiKey: 'demo-api-key'}));"
        f" connectStorageEmulator(storage, '127.0.0.1', {functions.rsplit(':', 1)[1]});"
        " return {storage, ref, uploadBytes}; })(), redirect: false"
    )
    page_html = study_page(8, functions, "large-uploaded", 1, params=storage, data="{blob: 'x'.repeat(70000)}")
    page_html = page_html.replace("</head>", '<script src="/firebase-sdk.js"></script></head>')
    serve_on_the_functions_origin(context, functions, {"/large-uploaded.html": page_html.encode()})
    context.route(
        f"{functions}/firebase-sdk.js",
        lambda route: route.fulfill(status=200, content_type="text/javascript", body=firebase_storage_sdk),
    )
    bridge = stack.event_bridge(interval=0.2).start()
    try:
        page = context.new_page()
        page.goto(f"{functions}/large-uploaded.html")
        expect(page.locator(".trial")).to_have_text("Trial 0")
        page.keyboard.press("Space")
        expect(page.locator(".visitor-sessions-saved")).to_be_visible()  # complete() waited for the upload
    finally:
        bridge.stop()
    (stored_row,) = rows(db, "SELECT data FROM responses")
    name = "trial-1-0-blob.json"
    assert stored_row.data["blob"] == {"omitted": "uploaded", "bytes": 70002, "upload": name}
    assert [r.name.rsplit("/", 1)[-1] for r in rows(db, "SELECT name FROM uploads")] == [name]
    (blob,) = bucket.list_blobs(prefix="sessions/")
    assert json.loads(blob.download_as_bytes()) == "x" * 70000
