"""A deployed function refuses the settings of local development and tests (SPEC §12): with
FIREBASE_AUTH_EMULATOR_HOST set, firebase-admin accepts unsigned ID tokens, so one with
`researcher: true` would read every experiment. Cloud Run sets K_SERVICE, K_REVISION and
K_CONFIGURATION in every deployed container; the local server and the tests set none."""

from __future__ import annotations

import json

import pytest
import requests

from devtools.ports import free_port
from devtools.stack import FunctionsServer
from tests.support import assert_error, new_guest_key, rows

CLOUD_RUN = {
    "K_SERVICE": "create-session",
    "K_REVISION": "create-session-00001-abc",
    "K_CONFIGURATION": "create-session",
}


@pytest.fixture(scope="module")
def deployed(stack, tmp_path_factory):
    """The functions served as if deployed on Cloud Run, with the emulators' settings left in."""
    server = FunctionsServer(
        free_port(), {**stack.env(), **CLOUD_RUN}, tmp_path_factory.mktemp("deployed") / "functions.log"
    ).start()
    yield server
    server.stop()


def config_lines(server) -> list[dict]:
    entries = [json.loads(line) for line in server.log_path.read_text().splitlines() if line.startswith("{")]
    return [entry for entry in entries if entry["message"].startswith("configuration error")]


def test_an_unsigned_researcher_token_is_not_accepted_when_deployed(deployed, db, auth_emulator):
    user = auth_emulator.new_user()
    forged = auth_emulator.crafted_token(user.uid, researcher=True, email=user.email)

    export = requests.get(
        f"{deployed.url}/export_data",
        params={"format": "csv"},
        timeout=30,
        headers={"Authorization": f"Bearer {forged}"},
    )
    session = requests.post(
        f"{deployed.url}/create_session", json={}, timeout=30, headers={"Authorization": f"Bearer {forged}"}
    )

    for answer in (export, session):
        error = assert_error(answer, 500, "internal")
        assert "FIREBASE_AUTH_EMULATOR_HOST" not in error["message"]  # the client is told nothing of it
    assert rows(db, "SELECT id FROM users") == []
    lines = config_lines(deployed)
    assert lines and all(entry["severity"] == "ERROR" for entry in lines)
    line = lines[-1]["message"]
    assert "\n" not in line
    assert "FIREBASE_AUTH_EMULATOR_HOST" in line and "K_SERVICE" in line


def test_a_guest_is_still_served_when_deployed(deployed, db):
    # Nothing of Firebase is needed for a guest's session: the misconfiguration stops what it would weaken.
    answer = requests.post(
        f"{deployed.url}/create_session", json={}, headers={"X-Guest-Key": new_guest_key()}, timeout=30
    )
    assert answer.status_code == 201, answer.text
