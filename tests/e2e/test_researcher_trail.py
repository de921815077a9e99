"""The researchers' trail (sql/007_researcher_actions.sql): export_data and erase_visitor,
served against the real stack, each leave exactly one row saying who, what, when and with
which filters; a visitor's own withdrawal leaves none; only `researcher: true` reads it."""

from __future__ import annotations

from datetime import UTC, datetime

import requests

from tests.support import assert_error, new_guest_key, rows, scalar


def actions(db) -> list:
    return rows(db, "SELECT uid, action, details, at FROM researcher_actions ORDER BY id")


def read_trail(api, token=None, **params) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.get(api.url("get_researcher_actions"), params=params, headers=headers, timeout=30)


def test_an_export_leaves_one_row_with_its_filters_before_it_streams(api, db, auth_emulator):
    key = new_guest_key()
    assert api.post("create_session", {"experimentId": "a"}, guest=key).status_code == 201
    researcher = auth_emulator.researcher(True)
    started = datetime.now(UTC)

    answer = requests.get(
        api.url("export_data"),
        params={"experimentId": ["a", ""], "from": "2020-01-01T00:00:00Z", "format": "csv", "table": "sessions"},
        headers={"Authorization": f"Bearer {researcher.id_token}"},
        timeout=60,
        stream=True,
    )
    assert answer.status_code == 200
    # The row is there before the download is read: written before the stream began.
    (row,) = actions(db)
    answer.close()

    assert (row.uid, row.action) == (researcher.uid, "export_data")
    assert row.details == {
        "experimentIds": ["a", None],
        "from": "2020-01-01T00:00:00.000000Z",
        "to": None,
        "format": "csv",
        "table": "sessions",
    }
    assert started <= row.at <= datetime.now(UTC)

    # Every experiment, as a zip: "all"; a refused request (400) leaves nothing.
    assert requests.get(api.url("export_data"), headers={"Authorization": f"Bearer {researcher.id_token}"}, timeout=60)
    assert_error(
        requests.get(
            api.url("export_data"),
            params={"format": "xml"},
            headers={"Authorization": f"Bearer {researcher.id_token}"},
            timeout=60,
        ),
        400,
        "invalid_argument",
    )
    assert [r.details for r in actions(db)][1] == {
        "experimentIds": "all",
        "from": None,
        "to": None,
        "format": "zip",
        "table": None,
    }
    assert len(actions(db)) == 2


def test_an_erasure_leaves_one_row_in_its_transaction_and_erasure_keeps_the_trail(
    api, db, auth_emulator, firestore, bucket
):
    researcher = auth_emulator.researcher(True)
    requests.get(api.url("export_data"), headers={"Authorization": f"Bearer {researcher.id_token}"}, timeout=60)
    key = new_guest_key()
    number = api.post("create_session", {}, guest=key).json()["visitorNumber"]

    answer = api.post("erase_visitor", {"visitorNumber": number}, token=researcher.id_token)

    assert answer.status_code == 202, answer.text
    export_row, erase_row = actions(db)
    assert (erase_row.uid, erase_row.action) == (researcher.uid, "erase_visitor")
    assert erase_row.details == {"visitorNumber": number, "erasureId": answer.json()["erasureId"]}
    # One transaction: the trail's time is the ledger's.
    assert erase_row.at == scalar(db, "SELECT sql_erased_at FROM erasures")
    assert export_row.action == "export_data"  # kept by the erasure
    assert scalar(db, "SELECT count(*) FROM guests") == 0

    # An erasure that finds nobody erases nothing and records nothing.
    assert_error(api.post("erase_visitor", {"visitorNumber": 999999}, token=researcher.id_token), 404, "not_found")
    assert len(actions(db)) == 2

    # A visitor's own withdrawal is not a researcher's act.
    other = new_guest_key()
    api.post("create_session", {}, guest=other)
    assert api.post("delete_my_data", {}, guest=other).status_code == 202
    assert len(actions(db)) == 2
    assert scalar(db, "SELECT count(*) FROM erasures") == 2


def test_only_a_researcher_for_every_experiment_reads_the_trail(api, db, auth_emulator):
    everything = auth_emulator.researcher(True)
    for n in range(3):
        requests.get(
            api.url("export_data"),
            params={"format": "jsonl", "table": ["responses", "sessions", "visitors"][n]},
            headers={"Authorization": f"Bearer {everything.id_token}"},
            timeout=60,
        )

    answer = read_trail(api, everything.id_token)

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["limit"] == 100
    assert [a["details"]["table"] for a in body["actions"]] == ["visitors", "sessions", "responses"]  # newest first
    assert {a["uid"] for a in body["actions"]} == {everything.uid}
    assert all(a["action"] == "export_data" and a["at"].endswith("Z") for a in body["actions"])

    assert_error(read_trail(api, auth_emulator.researcher(["a"]).id_token), 403, "permission_denied")
    assert_error(read_trail(api, auth_emulator.new_user().id_token), 403, "permission_denied")
    assert_error(read_trail(api), 401, "unauthenticated")
    assert_error(read_trail(api, everything.id_token, limit="5"), 400, "invalid_argument")
    # Reading is no act: the trail is as it was.
    assert len(actions(db)) == 3


def test_the_trail_answers_the_latest_100(api, db, auth_emulator):
    with db.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO researcher_actions (uid, action, details) "
            "SELECT 'r', 'export_data', jsonb_build_object('n', n) FROM generate_series(1, 130) n"
        )
    body = read_trail(api, auth_emulator.researcher(True).id_token).json()
    assert [a["details"]["n"] for a in body["actions"]] == list(range(130, 30, -1))
