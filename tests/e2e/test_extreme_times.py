"""Times at the edge of what a datetime holds (SPEC §4, §5, §10): 0001-01-01T00:00:00+14:00 is before
year 1 in UTC, 9999-12-31T23:59:59-14:00 after 9999. A researcher's query is 400 invalid_argument; a
storage event with such a time is acknowledged (2xx) and logged, never a 500 that Eventarc retries."""

from __future__ import annotations

import pytest
import requests

from tests.support import assert_error

EXTREMES = [
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-14:00",
    "0001-01-01T00:00:00.000001+00:01",
    "9999-12-31T23:59:59.999999-00:01",
]


@pytest.mark.parametrize("name", ["from", "to"])
@pytest.mark.parametrize("value", EXTREMES)
def test_an_export_time_out_of_range_is_invalid_argument(api, auth_emulator, name, value):
    researcher = auth_emulator.researcher()
    answer = requests.get(
        api.url("export_data"),
        params={name: value, "format": "csv"},
        timeout=60,
        headers={"Authorization": f"Bearer {researcher.id_token}"},
    )
    error = assert_error(answer, 400, "invalid_argument")
    assert name in error["message"]


def test_the_extreme_times_in_range_are_served(api, auth_emulator):
    researcher = auth_emulator.researcher()
    answer = requests.get(
        api.url("export_data"),
        timeout=60,
        params={"from": "0001-01-01T00:00:00Z", "to": "9999-12-31T23:59:59Z", "format": "csv"},
        headers={"Authorization": f"Bearer {researcher.id_token}"},
    )
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize("value", EXTREMES)
def test_an_event_time_out_of_range_is_acknowledged_and_logged(uploads_world, stack, value):
    world = uploads_world
    session = world.new_session()
    item = world.upload(session["sessionId"], "a.png")
    log = stack.workdir / "functions.log"
    before = log.stat().st_size

    answer = world.deliver(item, time=value)

    assert 200 <= answer.status_code < 300, answer.text
    assert world.uploads() == {}
    logged = log.read_bytes()[before:].decode()
    assert "upload event acknowledged without action" in logged and value in logged
    assert '"severity": "WARNING"' in logged
