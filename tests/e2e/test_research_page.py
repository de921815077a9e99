"""The researcher page (public/research.html, docs/researchers.md) in a real browser: Debian's Chromium
driven by Playwright, as tests/e2e/test_browser.py does, against the test stack and the real
get_study_stats and export_data.

The study is seeded through the functions over HTTP (create_session, submit_response,
register, the storage trigger) and spread over several days by setting created_at in
PostgreSQL; the researchers are Auth emulator users with the `researcher` claim. The page is
signed in through its own form, and its table, its charts (Chart.getChart(canvas)) and a
downloaded zip are checked against what was seeded.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import zipfile
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import text

from devtools.clients import AuthUser
from devtools.stack import ROOT
from tests.e2e.test_browser import (
    chromium,
    in_chromium,
    new_page,
    output_dir,  # noqa: F401 - a fixture, shared with the visitor page's tests
)
from tests.support import EMPTY_STATS, new_guest_key, register, rows

BUNDLE = ROOT / "public" / "build" / "research.js"
PASSWORD = "correct-horse-battery"  # AuthEmulatorClient's
ZIP_FILES = {"responses.csv", "sessions.csv", "visitors.csv", "uploads.csv", "manifest.json"}
BAR = (0x3B, 0x6E, 0xA8)  # the bars' colour in public/charts.js


@pytest.fixture(scope="module")
def browser():
    with chromium(BUNDLE) as launched:
        yield launched


@pytest.fixture
def page(browser):
    with new_page(browser, viewport={"width": 1100, "height": 900}, accept_downloads=True) as opened:
        yield opened


# --- the seeded study ------------------------------------------------------------


@dataclass
class Study:
    today: date
    sessions_between: dict[str, tuple[datetime, datetime]]  # per data-experiment: first and last session
    registered: AuthUser  # a visitor who registered: a plain user, not a researcher


def days_ago(db, session_id: str, days: int) -> None:
    """Move a session, its responses and its guest's first visit to noon UTC, `days` days ago."""
    with db.begin() as conn:
        moment = conn.execute(
            text(
                "SELECT date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
                " - make_interval(days => :days) + interval '12 hours'"
            ),
            {"days": days},
        ).scalar()
        conn.execute(
            text("UPDATE sessions SET created_at = :t, updated_at = :t WHERE id = :id"), {"t": moment, "id": session_id}
        )
        conn.execute(
            text("UPDATE responses SET created_at = :t WHERE session_id = :id"), {"t": moment, "id": session_id}
        )
        conn.execute(
            text(
                "UPDATE guests SET created_at = LEAST(created_at, :t)"
                " WHERE id = (SELECT guest_id FROM sessions WHERE id = :id)"
            ),
            {"t": moment, "id": session_id},
        )


@pytest.fixture
def study(uploads_world, auth_emulator, db) -> Study:
    """Experiment a: visitor 1 (a guest; 3 days ago levels 0-2 and an upload, today level 0) and
    visitor 2 (yesterday levels 0-1, then registered). Experiment b: visitor 3 (2 days ago level 0;
    today a session without responses). No experiment: visitor 4 (today, level 0)."""
    world, api = uploads_world, uploads_world.api

    def session(key, experiment_id, levels):
        made = world.new_session(guest=key, experiment_id=experiment_id)
        for level in levels:
            answer = api.post(
                "submit_response",
                {"sessionId": made["sessionId"], "level": level, "data": {"answer": f"level {level}"}},
                guest=key,
            )
            assert answer.status_code == 201, answer.text
        return made["sessionId"]

    first, second, third, fourth = (new_guest_key() for _ in range(4))
    s1 = session(first, "a", [0, 1, 2])
    session(first, "a", [0])
    s3 = session(second, "a", [0, 1])
    s4 = session(third, "b", [0])
    session(third, "b", [])
    session(fourth, None, [0])
    delivered = world.deliver(world.upload(s1, "drawing.png"))
    assert 200 <= delivered.status_code < 300, delivered.text
    user = auth_emulator.new_user()
    registered = register(api, user, second)
    assert registered.status_code in (200, 201), registered.text

    days_ago(db, s1, 3)
    days_ago(db, s3, 1)
    days_ago(db, s4, 2)
    between = {
        row.experiment: (row.first, row.last)
        for row in rows(
            db,
            "SELECT coalesce(experiment_id, '') AS experiment, min(created_at) AS first, max(created_at) AS last"
            " FROM sessions GROUP BY experiment_id",
        )
    }
    (today,) = rows(db, "SELECT (now() AT TIME ZONE 'UTC')::date AS d")
    return Study(today.d, between, user)


def utc_text(moment: datetime) -> str:
    """How the page writes a time: to the minute, in UTC."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def expected_rows(study: Study, *experiments: str) -> dict[str, list[str]]:
    """The table's rows, per data-experiment: name, visitors, registered visitors, sessions,
    responses, uploads, first and last session."""
    figures = {
        "a": ["a", "2", "1", "3", "6", "1"],
        "b": ["b", "1", "0", "2", "1", "0"],
        "": ["(no experiment)", "1", "0", "1", "1", "0"],
    }
    return {
        experiment: [*figures[experiment], *map(utc_text, study.sessions_between[experiment])]
        for experiment in experiments
    }


def expected_daily(study: Study, sessions_by_days_ago: dict[int, int]) -> tuple[list[str], list[int]]:
    """The 30 dates of the sessions-per-day chart, oldest first, and its bars."""
    days = [study.today - timedelta(days=n) for n in range(29, -1, -1)]
    return [d.isoformat() for d in days], [sessions_by_days_ago.get((study.today - d).days, 0) for d in days]


# --- what the page shows ----------------------------------------------------------


def sign_in(page, base: str, email: str):
    page.goto(f"{base}/research.html")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def table_rows(page) -> dict[str, list[str]]:
    return page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('#experiments tbody tr')]
        .map((row) => [row.dataset.experiment, [...row.cells].map((cell) => cell.textContent)]))""")


def chart(page, experiment: str, kind: str) -> dict:
    """The Chart.js chart drawn on an experiment's canvas: its labels, its data, and how many of
    the canvas's pixels have the bars' colour (0 for a blank canvas)."""
    return page.evaluate(
        """([experiment, kind, bar]) => {
        const canvas = document.querySelector(
            `#charts article[data-experiment="${experiment}"] canvas[data-chart="${kind}"]`);
        const drawn = Chart.getChart(canvas);
        const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        let barPixels = 0;
        for (let i = 0; i < pixels.length; i += 4) {
            if (pixels[i] === bar[0] && pixels[i + 1] === bar[1] && pixels[i + 2] === bar[2] && pixels[i + 3] === 255) {
                barPixels += 1;
            }
        }
        return { type: drawn.config.type, labels: drawn.data.labels, data: drawn.data.datasets[0].data, barPixels };
    }""",
        [experiment, kind, list(BAR)],
    )


def read_csv(data: bytes) -> list[dict]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))


@in_chromium
def test_a_researcher_sees_the_study_and_downloads_it(stack, study, auth_emulator, page, output_dir):
    from playwright.sync_api import expect

    base = stack.env()["FUNCTIONS_URL"]
    researcher = auth_emulator.researcher(True)
    requested = []
    page.on("request", lambda request: requested.append(request.url))
    sign_in(page, base, researcher.email)

    expect(page.locator("#account")).to_have_text(f"Signed in as {researcher.email}")
    expect(page.locator("#notice")).to_have_text("This account covers every experiment.")
    # The Firebase JS SDK signed in on the Auth emulator (connectAuthEmulator).
    assert (
        f"http://{stack.auth.host}/identitytoolkit.googleapis.com/v1/accounts:signInWithPassword?key=demo-api-key"
    ) in requested
    expect(page.locator("#experiments tbody tr")).to_have_count(3)
    expect(page.locator("#error")).to_be_hidden()
    assert table_rows(page) == expected_rows(study, "a", "b", "")
    expect(page.locator("#generated")).to_have_text(re.compile(r"^Figures as of \d{4}-\d\d-\d\d \d\d:\d\d UTC\.$"))

    labels, sessions = expected_daily(study, {3: 1, 1: 1, 0: 1})
    daily = chart(page, "a", "daily")
    assert (daily["type"], daily["labels"], daily["data"]) == ("bar", labels, sessions)
    assert daily["barPixels"] > 50, "the sessions-per-day chart of experiment a is blank"
    funnel = chart(page, "a", "levels")
    assert (funnel["labels"], funnel["data"]) == (["Level 0", "Level 1", "Level 2"], [3, 2, 1])
    assert funnel["barPixels"] > 50, "the level funnel of experiment a is blank"
    labels, sessions = expected_daily(study, {2: 1, 0: 1})
    assert (chart(page, "b", "daily")["data"], chart(page, "b", "levels")["data"]) == (sessions, [1])
    assert chart(page, "", "levels")["labels"] == ["Level 0"]

    # The researchers' trail under the figures (researcher: true): nothing done yet.
    expect(page.locator("#trail-step")).to_be_visible()
    expect(page.locator("#no-trail")).to_be_visible()
    expect(page.locator("#trail tbody tr")).to_have_count(0)

    page.screenshot(path=str(output_dir / "research-page.png"), full_page=True)
    assert (output_dir / "research-page.png").stat().st_size > 0

    with page.expect_download() as downloading:
        page.get_by_role("button", name="Everything (zip)").click()
    download = downloading.value
    assert download.suggested_filename.endswith(".zip")
    saved = output_dir / download.suggested_filename
    download.save_as(saved)
    with zipfile.ZipFile(saved) as archive:
        assert set(archive.namelist()) == ZIP_FILES
        files = {name: archive.read(name) for name in ZIP_FILES}
    # The page saved the bytes the function sent: each file as its manifest describes it.
    manifest = json.loads(files.pop("manifest.json"))
    assert {name: (entry["rows"], entry["bytes"], entry["sha256"]) for name, entry in manifest["files"].items()} == {
        name: (len(read_csv(data)), len(data), hashlib.sha256(data).hexdigest()) for name, data in files.items()
    }
    responses = read_csv(files["responses.csv"])
    assert {name: len(read_csv(data)) for name, data in files.items()} == {
        "responses.csv": 8,
        "sessions.csv": 6,
        "visitors.csv": 4,
        "uploads.csv": 1,
    }
    assert sorted(r["experimentId"] for r in responses) == ["", "a", "a", "a", "a", "a", "a", "b"]
    expect(page.locator("#download-status")).to_have_text(
        f"Saved {download.suggested_filename} ({saved.stat().st_size} bytes)."
    )
    # The export is in the trail now: who, what, with which filters.
    expect(page.locator("#trail tbody tr")).to_have_count(1)
    cells = page.locator("#trail tbody tr").first.locator("td").all_text_contents()
    assert cells[1:] == [researcher.uid, "export_data", "experimentIds: all; format: zip"], cells
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", cells[0]), cells
    expect(page.locator("#no-trail")).to_be_hidden()

    # A reload keeps the sign-in (the SDK's IndexedDB) and shows the figures again.
    page.reload()
    expect(page.locator("#experiments tbody tr")).to_have_count(3)
    assert table_rows(page) == expected_rows(study, "a", "b", "")

    # Nothing from a CDN: every request went to the stack on this machine.
    assert all(url.startswith(("http://127.0.0.1:", "blob:")) for url in requested), requested

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    expect(page.locator("#studies-step")).to_be_hidden()
    expect(page.locator("#charts canvas")).to_have_count(0)


@in_chromium
def test_a_plain_user_sees_the_refusal_until_granted_the_role(stack, study, auth_emulator, page, output_dir):
    from playwright.sync_api import expect

    email = study.registered.email
    sign_in(page, stack.env()["FUNCTIONS_URL"], email)

    expect(page.locator("#notice")).to_have_text(
        f"{email} is not a researcher, so this page shows it no study data. The role is given by whoever runs "
        'the study (make researcher ARGS="grant EMAIL"); once it is granted, reload this page (it asks for a '
        "new token itself). Or sign out and sign in with a researcher's account."
    )
    expect(page.locator("#account")).to_have_text(f"Signed in as {email}")
    expect(page.locator("#error")).to_be_hidden()
    expect(page.locator("#studies-step")).to_be_hidden()
    expect(page.locator("#downloads-step")).to_be_hidden()
    expect(page.locator("#charts canvas")).to_have_count(0)
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    page.screenshot(path=str(output_dir / "refused.png"), full_page=True)

    # Granted while the page is open. The SDK keeps the token it has (valid for an hour, without the
    # claim): the reload sends it, is refused, and the page asks for a fresh token and tries again.
    auth_emulator.set_claims(study.registered.uid, {"researcher": ["b"]})
    answers, refreshes = [], []
    page.on("response", lambda r: answers.append(r.status) if "/get_study_stats" in r.url else None)
    page.on("request", lambda r: refreshes.append(r.url) if "securetoken.googleapis.com" in r.url else None)
    page.reload()
    expect(page.locator("#notice")).to_have_text(
        "This account covers only experiment b: other experiments are neither shown nor exported."
    )
    expect(page.locator("#experiments tbody tr")).to_have_count(1)
    assert table_rows(page) == expected_rows(study, "b")
    assert answers == [403, 200] and len(refreshes) == 1, (answers, refreshes)
    expect(page.locator("#error")).to_be_hidden()


@in_chromium
def test_a_scoped_researcher_sees_and_downloads_only_its_experiment(stack, study, auth_emulator, page, output_dir):
    from playwright.sync_api import expect

    researcher = auth_emulator.researcher(["a", "c"])
    sign_in(page, stack.env()["FUNCTIONS_URL"], researcher.email)

    expect(page.locator("#notice")).to_have_text(
        "This account covers only experiments a, c: other experiments are neither shown nor exported. "
        "No sessions yet in c."
    )
    expect(page.locator("#experiments tbody tr")).to_have_count(1)
    assert table_rows(page) == expected_rows(study, "a")
    expect(page.locator("#charts article")).to_have_count(1)
    assert chart(page, "a", "levels")["data"] == [3, 2, 1]
    expect(page.locator("#export-experiment option")).to_have_text(["Every experiment this account covers", "a", "c"])
    expect(page.locator("#trail-step")).to_be_hidden()  # the trail is for researcher: true only
    page.screenshot(path=str(output_dir / "scoped.png"), full_page=True)

    with page.expect_download() as downloading:
        page.get_by_role("button", name="responses.csv").click()
    download = downloading.value
    assert download.suggested_filename.endswith(".csv")
    responses = read_csv(download.path().read_bytes())
    assert len(responses) == 6 and {r["experimentId"] for r in responses} == {"a"}
    expect(page.locator("#error")).to_be_hidden()


def test_the_dev_server_serves_the_research_page_and_its_bundle(stack):
    import requests

    base = stack.env()["FUNCTIONS_URL"]
    page = requests.get(f"{base}/research.html", timeout=10)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert 'src="build/research.js"' in page.text
    bundle = requests.get(f"{base}/build/research.js", timeout=10)
    assert bundle.status_code == 200 and bundle.headers["Content-Type"].startswith("text/javascript")


# --- configured experiments, a phone, and a funnel without levels -------------------------------


def configured(api, token, experiment_id, **fields) -> dict:
    answer = api.post("configure_experiment", {"experimentId": experiment_id, **fields}, token=token)
    assert answer.status_code == 200, answer.text
    return answer.json()


def overflow(page) -> int:
    """How far the page is wider than the window (0: no horizontal scrolling of the page)."""
    return page.evaluate("() => document.documentElement.scrollWidth - document.documentElement.clientWidth")


@in_chromium
def test_a_researcher_configures_an_experiment_and_excludes_a_session(stack, api, db, auth_emulator, page, output_dir):
    from playwright.sync_api import expect

    researcher = auth_emulator.researcher(True)
    configured(
        api,
        researcher.id_token,
        "stroop",
        conditions=[{"name": "congruent", "quota": 2}, {"name": "incongruent"}],
        platform="prolific",
        outcomes={"completed": {"code": "C1A2B3C4"}},
    )
    key = new_guest_key()
    session = api.post("create_session", {"experimentId": "demo"}, guest=key).json()["sessionId"]
    sign_in(page, stack.env()["FUNCTIONS_URL"], researcher.email)

    # Listed though it has no session: its settings, without the codes, and a form.
    article = page.locator('#configurations article[data-experiment="stroop"]')
    expect(article).to_be_visible()
    expect(page.locator("#configurations article")).to_have_count(1)
    expect(article.locator("dl").first).to_contain_text("Conditionscongruent (quota 2), incongruent")
    expect(article.locator("dl").first).to_contain_text("Outcomescompleted (code)")
    assert "C1A2B3C4" not in article.locator("dl").first.inner_text()
    article.get_by_text("Edit", exact=True).click()
    form = article.locator("form")
    expect(form.get_by_label("Experiment id")).to_have_value("stroop")
    expect(form.get_by_label("Code", exact=True)).to_have_value("C1A2B3C4")

    # Edit it: a cap, inactive, a second quota, another outcome with its code.
    form.get_by_label("Max participants (empty: no cap)").fill("40")
    form.get_by_label("Active (admits new participants)").uncheck()
    form.locator('[data-row="condition"]').nth(1).get_by_label("Quota").fill("3")
    form.get_by_role("button", name="Add an outcome").click()
    added = form.locator('[data-row="outcome"]').nth(1)
    added.get_by_label("Outcome").fill("screened_out")
    added.get_by_label("Code", exact=True).fill("SCRN0001")
    form.get_by_role("button", name="Save the configuration").click()
    expect(page.locator("#notice")).to_have_text(re.compile(r"^Saved the configuration of stroop \("))
    expect(page.locator("#error")).to_be_hidden()
    stored = api.get("configure_experiment?experimentId=stroop", token=researcher.id_token).json()
    assert (stored["maxParticipants"], stored["active"], stored["platform"]) == (40, False, "prolific")
    assert stored["conditions"] == [{"name": "congruent", "quota": 2}, {"name": "incongruent", "quota": 3}]
    assert stored["outcomes"] == {
        "completed": {"code": "C1A2B3C4", "serverCode": None, "creditUrl": None},
        "screened_out": {"code": "SCRN0001", "serverCode": None, "creditUrl": None},
    }
    expect(article.locator("dl").first).to_contain_text("Cap40 participants")

    # A change the server refuses is shown, and changes nothing.
    article.get_by_text("Edit", exact=True).click()
    article.locator("form").get_by_label("Redirect URL (platform none)").fill("https://example.org/done")
    article.locator("form").get_by_role("button", name="Save the configuration").click()
    expect(page.locator("#error")).to_contain_text("redirectUrl is for platform none")
    assert api.get("configure_experiment?experimentId=stroop", token=researcher.id_token).json() == stored

    # A new experiment, from the empty form.
    page.get_by_text("Configure an experiment", exact=True).click()
    new = page.locator("#new-experiment-form form")
    new.get_by_label("Experiment id").fill("flanker")
    new.get_by_role("button", name="Add a condition").click()
    new.get_by_label("Condition").fill("left")
    new.get_by_role("button", name="Configure the experiment").click()
    expect(page.locator('#configurations article[data-experiment="flanker"]')).to_be_visible()
    assert api.get("configure_experiment?experimentId=flanker", token=researcher.id_token).json()["conditions"] == [
        {"name": "left", "quota": None}
    ]

    # Exclude a session.
    page.get_by_label("Session id").fill(session)
    page.get_by_role("button", name="Exclude the session").click()
    expect(page.locator("#exclude-status")).to_have_text(f"Excluded session {session} of demo.")
    (row,) = rows(db, "SELECT outcome, completed_at FROM sessions WHERE id = :id", id=session)
    assert row.outcome == "excluded" and row.completed_at is not None
    # Each act is in the trail, newest first, with no code.
    expect(page.locator("#trail tbody tr")).to_have_count(4)
    trail = page.locator("#trail tbody tr td:nth-child(3)").all_text_contents()
    assert trail == ["exclude_session", "configure_experiment", "configure_experiment", "configure_experiment"]
    expect(page.locator("#trail tbody tr").first.locator("td").nth(3)).to_have_text(
        f"experimentId: demo; sessionId: {session}"
    )
    assert "C1A2B3C4" not in page.locator("#trail").inner_text()
    page.screenshot(path=str(output_dir / "configured.png"), full_page=True)


@in_chromium
def test_a_scoped_researcher_sees_only_its_configured_experiments(stack, api, db, auth_emulator, page):
    from playwright.sync_api import expect

    everyone = auth_emulator.researcher(True).id_token
    for experiment_id in ("mine", "theirs"):
        configured(api, everyone, experiment_id)
    scoped = auth_emulator.researcher(["mine"])
    sign_in(page, stack.env()["FUNCTIONS_URL"], scoped.email)
    expect(page.locator("#configurations article")).to_have_count(1)
    expect(page.locator('#configurations article[data-experiment="mine"]')).to_be_visible()


@in_chromium
def test_the_page_fits_a_phone_and_says_when_no_response_has_a_level(stack, api, db, auth_emulator, browser):
    from playwright.sync_api import expect

    researcher = auth_emulator.researcher(True)
    long_name = "a-very-long-experiment-name-" + "x" * 100  # 128 characters, no space to break at
    assert len(long_name) == 128
    configured(api, researcher.id_token, long_name, conditions=[{"name": "condition-" + "y" * 54, "quota": 10}])
    key = new_guest_key()
    for experiment_id in (long_name, "levelless"):
        session = api.post("create_session", {"experimentId": experiment_id}, guest=key).json()["sessionId"]
        # A response without a level: the funnel has nothing to draw.
        answer = api.post("submit_response", {"sessionId": session, "data": {"x": 1}}, guest=key)
        assert answer.status_code == 201, answer.text

    with new_page(browser, viewport={"width": 375, "height": 812}, is_mobile=True, has_touch=True) as phone:
        sign_in(phone, stack.env()["FUNCTIONS_URL"], researcher.email)
        expect(phone.locator("#experiments tbody tr")).to_have_count(2)
        expect(phone.locator(f'#configurations article[data-experiment="{long_name}"]')).to_be_visible()
        assert overflow(phone) == 0
        phone.locator("#configurations article").first.get_by_text("Edit", exact=True).click()
        phone.get_by_text("Configure an experiment", exact=True).click()
        assert overflow(phone) == 0

        article = phone.locator('#charts article[data-experiment="levelless"]')
        expect(article.locator(".no-levels")).to_have_text(
            "Level funnel: no response has a level yet (submit_response's level), so there is nothing to draw."
        )
        expect(article.locator('canvas[data-chart="levels"]')).to_have_count(0)
        expect(article.locator('canvas[data-chart="daily"]')).to_have_count(1)
        expect(phone.locator("#error")).to_be_hidden()


@in_chromium
def test_a_configured_experiment_shows_the_study_figures_get_study_stats_gives(stack, api, db, auth_emulator, page):
    """The figures per condition, outcomes, deliveries, test and excluded sessions, as get_study_stats
    answers them for a configured experiment: here added to its real answer on the way to the page."""
    from playwright.sync_api import expect

    researcher = auth_emulator.researcher(True)
    configured(
        api, researcher.id_token, "stroop", conditions=[{"name": "congruent", "quota": 2}, {"name": "incongruent"}]
    )
    figures = {
        "experimentId": "stroop",
        "active": True,
        "completed": 3,
        "abandoned": 1,
        "testSessions": 2,
        "excluded": 1,
        "conditions": [
            {"name": "congruent", "quota": 2, "places": 2, "started": 1, "completed": 1, "abandoned": 0},
            {"name": "incongruent", "quota": None, "places": 2, "started": 0, "completed": 2, "abandoned": 1},
        ],
        "outcomes": {"completed": 2, "screened_out": 1},
        "deliveries": {"delivered": 1, "pending": 1, "failed": 0},
    }

    def with_figures(route):
        answer = route.fetch()
        body = answer.json()
        body["experiments"] = [e for e in body["experiments"] if e["experimentId"] != "stroop"] + [
            {**EMPTY_STATS, **figures}
        ]
        route.fulfill(response=answer, json=body)

    page.route("**/get_study_stats*", with_figures)
    sign_in(page, stack.env()["FUNCTIONS_URL"], researcher.email)
    article = page.locator('#configurations article[data-experiment="stroop"]')
    table = article.locator('table[data-figures="conditions"]')
    expect(table.locator("tbody tr")).to_have_count(2)
    cells = table.locator("tbody tr").evaluate_all("(rows) => rows.map((r) => [...r.cells].map((c) => c.textContent))")
    assert cells == [["congruent", "2", "2", "1", "1", "0"], ["incongruent", "—", "2", "0", "2", "1"]]
    sessions = article.locator('[data-figures="sessions"]')
    for text_ in (
        "Completed sessions3",
        "Abandoned sessions1",
        "Test sessions2",
        "Excluded sessions1",
        "Outcomescompleted 2, screened_out 1",
        "Prolific deliveries1 delivered, 1 pending, 0 failed",
    ):
        expect(sessions).to_contain_text(text_)
