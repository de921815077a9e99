"""examples/jspsych/ (docs/jspsych.md) in Debian's Chromium against the test stack, served as make
dev serves it at /examples/jspsych/: configured from its own experiment.json, two Prolific
participants each run the whole study; the server gives them the two conditions, and the page
asks for Prolific's completion URL only once every trial is stored and the session completed
(checked at the moment the browser asks for it).

`make test` builds the example (the Makefile's example target); the test skips as the other
browser tests do where Chromium is missing.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import sqlalchemy
from sqlalchemy import text

from devtools.stack import ROOT
from shared.studies.config import parse_config
from tests.e2e.test_browser import browser, in_chromium, new_page  # noqa: F401 - a fixture
from tests.support import rows

EXAMPLE = ROOT / "examples" / "jspsych"
PROLIFIC = "https://app.prolific.com/submissions/complete"
TRIALS = 6  # the colour words; with the instructions and the last page, 8 responses


def configure_from_the_example(db: sqlalchemy.Engine) -> dict:
    """What `make experiments ARGS="set examples/jspsych/experiment.json"` stores."""
    document = parse_config(json.loads((EXAMPLE / "experiment.json").read_text())).to_json()
    with db.begin() as conn:
        conn.execute(
            text("INSERT INTO experiments (id, config) VALUES (:id, CAST(:config AS jsonb))"),
            {"id": document["experimentId"], "config": json.dumps(document)},
        )
    return document


def run_the_study(browser, db, base: str, participant: str) -> dict:
    """One participant from Prolific's study link to the completion redirect; what the database
    held at the moment the page asked for Prolific's URL."""
    from playwright.sync_api import expect

    at_redirect: dict = {}

    def prolific(route):
        (session,) = rows(
            db,
            "SELECT s.id, s.condition, s.completed_at, s.outcome, "
            "(SELECT count(*) FROM responses r WHERE r.session_id = s.id) AS responses "
            "FROM sessions s JOIN session_participants p ON p.session_id = s.id "
            "WHERE p.participant_id = :participant",
            participant=participant,
        )
        at_redirect.update(session._asdict(), url=route.request.url)
        route.fulfill(status=200, content_type="text/html", body="<p>Prolific</p>")

    with new_page(browser, viewport={"width": 900, "height": 700}) as page:
        page.route(f"{PROLIFIC}**", prolific)
        page.goto(f"{base}/examples/jspsych/?PROLIFIC_PID={participant}&STUDY_ID=study-1&SESSION_ID=sub-{participant}")
        page.get_by_role("button", name="Start").click()
        for _ in range(TRIALS):
            expect(page.locator("#study .word")).to_be_visible()
            page.keyboard.press("r")
        expect(page.locator("#saving")).to_have_text("All answers saved")  # the package's status event
        page.get_by_role("button", name="Finish").click()
        page.wait_for_url(f"{PROLIFIC}**")
    return at_redirect


@in_chromium
def test_two_prolific_participants_get_the_two_conditions_and_go_to_prolific_once_stored(stack, db, browser):
    if not (EXAMPLE / "public" / "build" / "study.js").exists():
        pytest.fail(
            "examples/jspsych/public/build/ is missing: run the tests with `make test`, or `make example` first"
        )
    document = configure_from_the_example(db)
    base = stack.env()["FUNCTIONS_URL"]
    page = requests.get(f"{base}/examples/jspsych/", timeout=10)
    assert page.status_code == 200 and 'src="build/study.js"' in page.text
    # Only the page and its build are served: the configuration (with its completion code) is not.
    assert requests.get(f"{base}/examples/jspsych/experiment.json", timeout=10).status_code == 404

    first = run_the_study(browser, db, base, "participant-a")
    second = run_the_study(browser, db, base, "participant-b")
    assert {first["condition"], second["condition"]} == {"congruent", "incongruent"}
    for seen in (first, second):
        # At the moment of the redirect every trial was stored and the session completed.
        assert seen["responses"] == TRIALS + 2 and seen["completed_at"] is not None and seen["outcome"] == "completed"
        assert parse_qs(urlsplit(seen["url"]).query) == {"cc": [document["outcomes"]["completed"]["code"]]}
        trials = rows(
            db, "SELECT data FROM responses WHERE session_id = :id AND data ? 'ink' ORDER BY created_at", id=seen["id"]
        )
        assert len(trials) == TRIALS
        # The timeline followed the server's condition, and each trial carries it and its attempt.
        assert {t.data["word"] == t.data["ink"] for t in trials} == {seen["condition"] == "congruent"}
        assert {(t.data["condition"], t.data["attempt"]) for t in trials} == {(seen["condition"], 1)}
