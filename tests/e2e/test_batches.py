"""submit_response's batch form over HTTP (SPEC §14.6): up to 500 responses in one call, all or
nothing, retry-safe item by item; no new response once a session is completed (§14.4); and the
order of a session's responses: createdAt strictly increasing as they were stored, under
concurrent writers too, and exports in that order. Each answer is compared with the rows."""

from __future__ import annotations

import csv
import io
import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import text

from shared.core.db import statement
from shared.web.auth import hash_guest_key
from tests.e2e.test_races import wait_for_lock_waiters
from tests.support import assert_error, new_guest_key, new_session, rows, scalar


def items(count: int, **data) -> list[dict]:
    """`count` new items, each with its own responseId, a level and data naming its position."""
    return [{"responseId": str(uuid.uuid4()), "level": i % 7, "data": {"i": i, **data}} for i in range(count)]


def send_batch(api, session_id: str, batch: list[dict], **credentials) -> requests.Response:
    return api.post("submit_response", {"sessionId": session_id, "responses": batch}, **credentials)


def stored(db, session_id: str) -> list:
    """The session's responses as stored, in createdAt order."""
    return rows(db, "SELECT * FROM responses WHERE session_id = :s ORDER BY created_at", s=session_id)


def utc(moment) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def assert_answers_are_the_rows(answer: list[dict], sent: list[dict], session: dict, db) -> None:
    """Each answered item is its sent item, as stored (in list order), created at strictly increasing times."""
    by_id = {str(r.id): r for r in rows(db, "SELECT * FROM responses WHERE session_id = :s", s=session["sessionId"])}
    assert [a["responseId"] for a in answer] == [item["responseId"] for item in sent]
    for item, answered in zip(sent, answer, strict=True):
        row = by_id[item["responseId"]]
        assert answered == {
            "responseId": item["responseId"],
            "sessionId": session["sessionId"],
            "visitorNumber": session["visitorNumber"],
            "level": item.get("level"),
            "createdAt": utc(row.created_at),
        }
        assert row.data == item["data"] and row.visitor_number == session["visitorNumber"]
    times = [a["createdAt"] for a in answer]
    assert times == sorted(times) and len(set(times)) == len(times)


def test_500_responses_in_one_call(api, db):
    key = new_guest_key()
    session = new_session(api, guest=key)
    batch = items(500, text="é" * 20 + "x" * 200)

    answer = send_batch(api, session["sessionId"], batch, guest=key)

    assert answer.status_code == 201, answer.text
    assert list(answer.json()) == ["responses"]
    assert_answers_are_the_rows(answer.json()["responses"], batch, session, db)
    assert [str(r.id) for r in stored(db, session["sessionId"])] == [item["responseId"] for item in batch]
    # The counters' triggers counted them once, with the latest of them.
    counts = rows(db, "SELECT * FROM session_counts WHERE session_id = :s", s=session["sessionId"])[0]
    assert counts.responses == 500 and counts.highest_level == 6
    assert utc(counts.last_response_at) == answer.json()["responses"][-1]["createdAt"]
    visitor = api.get("get_visitor", guest=key).json()
    assert visitor["sessions"][0]["responseCount"] == 500


def test_a_repeated_batch_answers_200_and_stores_nothing_new(api, db, auth_emulator):
    user = auth_emulator.new_user()
    session = new_session(api, token=user.id_token)
    batch = items(5)
    first = send_batch(api, session["sessionId"], batch, token=user.id_token)
    assert first.status_code == 201, first.text

    again = send_batch(api, session["sessionId"], batch, token=user.id_token)

    assert again.status_code == 200, again.text
    assert again.json() == first.json()
    assert scalar(db, "SELECT count(*) FROM responses") == 5
    assert scalar(db, "SELECT responses FROM session_counts WHERE session_id = :s", s=session["sessionId"]) == 5

    # Part retried, part new: 201; the retried ones as stored, the new one after them all.
    more = [*batch[3:], *items(1)]
    mixed = send_batch(api, session["sessionId"], more, token=user.id_token)
    assert mixed.status_code == 201, mixed.text
    assert mixed.json()["responses"][:2] == first.json()["responses"][3:]
    assert mixed.json()["responses"][2]["createdAt"] > first.json()["responses"][-1]["createdAt"]
    assert scalar(db, "SELECT count(*) FROM responses") == 6


BAD_ITEMS = {
    "no responseId": lambda item: {k: v for k, v in item.items() if k != "responseId"},
    "responseId null": lambda item: {**item, "responseId": None},
    "responseId not a UUID": lambda item: {**item, "responseId": "r-1"},
    "no data": lambda item: {k: v for k, v in item.items() if k != "data"},
    "negative level": lambda item: {**item, "level": -1},
    "level as text": lambda item: {**item, "level": "3"},
    "unknown field": lambda item: {**item, "sessionId": str(uuid.uuid4())},
    "not an object": lambda item: [item],
    "data over 64 KiB": lambda item: {**item, "data": "x" * (64 * 1024)},
}


@pytest.mark.parametrize("index", [0, 7])
@pytest.mark.parametrize("problem", sorted(BAD_ITEMS))
def test_one_invalid_item_is_400_naming_its_index_and_none_is_stored(api, db, problem, index):
    key = new_guest_key()
    session = new_session(api, guest=key)
    batch = items(8)
    batch[index] = BAD_ITEMS[problem](batch[index])

    error = assert_error(send_batch(api, session["sessionId"], batch, guest=key), 400, "invalid_argument")

    assert error["index"] == index
    assert f"responses[{index}]" in error["message"]
    assert scalar(db, "SELECT count(*) FROM responses") == 0


def test_a_responseid_twice_in_one_batch_is_400_naming_the_second(api, db):
    key = new_guest_key()
    session = new_session(api, guest=key)
    batch = items(4)
    batch[2]["responseId"] = batch[0]["responseId"]

    error = assert_error(send_batch(api, session["sessionId"], batch, guest=key), 400, "invalid_argument")

    assert error["index"] == 2
    assert scalar(db, "SELECT count(*) FROM responses") == 0


@pytest.mark.parametrize(
    "body",
    [
        {"responses": []},
        {"responses": items(501)},
        {"responses": {"0": items(1)[0]}},
        {"responses": items(1), "data": 1},
        {"responses": items(1), "responseId": str(uuid.uuid4())},
        {"responses": items(1), "level": 1},
    ],
    ids=["empty", "501 items", "not a list", "with data", "with responseId", "with level"],
)
def test_a_batch_that_is_not_1_to_500_items_or_both_forms_at_once_is_400(api, db, body):
    key = new_guest_key()
    session = new_session(api, guest=key)

    error = assert_error(
        api.post("submit_response", {"sessionId": session["sessionId"], **body}, guest=key), 400, "invalid_argument"
    )

    assert "index" not in error
    assert scalar(db, "SELECT count(*) FROM responses") == 0


def test_another_callers_session_is_403_and_an_unknown_one_404(api, db, auth_emulator):
    owner = new_guest_key()
    session = new_session(api, guest=owner)
    user = auth_emulator.new_user()

    assert_error(send_batch(api, session["sessionId"], items(3), guest=new_guest_key()), 403, "permission_denied")
    assert_error(send_batch(api, session["sessionId"], items(3), token=user.id_token), 403, "permission_denied")
    assert_error(send_batch(api, str(uuid.uuid4()), items(3), guest=owner), 404, "not_found")
    assert scalar(db, "SELECT count(*) FROM responses") == 0
    assert scalar(db, "SELECT count(*) FROM session_counts") == 0


def test_a_responseid_of_another_session_is_409_naming_its_index_and_none_is_stored(api, db):
    key = new_guest_key()
    first, second = new_session(api, guest=key), new_session(api, guest=key)
    taken = items(1)
    assert send_batch(api, first["sessionId"], taken, guest=key).status_code == 201

    error = assert_error(send_batch(api, second["sessionId"], [*items(2), *taken], guest=key), 409, "conflict")

    assert error["index"] == 2
    assert scalar(db, "SELECT count(*) FROM responses WHERE session_id = :s", s=second["sessionId"]) == 0


def complete(db, session_id: str) -> None:
    """What complete_session does to the row (SPEC §14.4), written here directly."""
    with db.begin() as conn:
        conn.execute(
            text("UPDATE sessions SET completed_at = now(), outcome = 'completed' WHERE id = :s"), {"s": session_id}
        )


def test_a_completed_session_refuses_new_responses_and_answers_retries(api, db):
    key = new_guest_key()
    session = new_session(api, guest=key)
    sid = session["sessionId"]
    single = {"sessionId": sid, "responseId": str(uuid.uuid4()), "level": 1, "data": "one"}
    batch = items(3)
    stored_single = api.post("submit_response", single, guest=key)
    stored_batch = send_batch(api, sid, batch, guest=key)
    assert (stored_single.status_code, stored_batch.status_code) == (201, 201)
    complete(db, sid)

    assert_error(api.post("submit_response", {**single, "responseId": str(uuid.uuid4())}, guest=key), 409, "conflict")
    assert_error(api.post("submit_response", {"sessionId": sid, "data": 2}, guest=key), 409, "conflict")
    assert_error(send_batch(api, sid, [*batch, *items(1)], guest=key), 409, "conflict")
    assert_error(send_batch(api, sid, items(2), guest=key), 409, "conflict")

    retried_single = api.post("submit_response", single, guest=key)
    retried_batch = send_batch(api, sid, batch, guest=key)
    assert (retried_single.status_code, retried_single.json()) == (200, stored_single.json())
    assert (retried_batch.status_code, retried_batch.json()) == (200, stored_batch.json())
    assert scalar(db, "SELECT count(*) FROM responses") == 4


def test_a_response_stored_after_another_is_later_even_when_its_statement_began_first(api, db):
    """createdAt follows the order responses are stored in, not when their statement began:
    a writer that began before another but stores after it (it waited) is stored after it."""
    key = new_guest_key()
    session = new_session(api, guest=key)
    early = items(2)
    with db.connect() as conn:
        # This transaction's now() is fixed here, before the response below is stored.
        began = conn.execute(text("SELECT now()")).scalar()
        answer = api.post("submit_response", {"sessionId": session["sessionId"], "data": "first"}, guest=key)
        assert answer.status_code == 201, answer.text
        conn.execute(
            statement("responses/submit_response_guest"),
            {"session_id": session["sessionId"], "key_hash": hash_guest_key(key), "items": json.dumps(early)},
        )
        conn.commit()

    order = [str(r.id) for r in stored(db, session["sessionId"])]
    assert order == [answer.json()["responseId"], *(item["responseId"] for item in early)]
    assert utc(began) < answer.json()["createdAt"]


def test_a_batch_waits_for_a_writer_of_its_session_and_is_stored_after_it(api, db):
    """A batch sent while another writer of its session has not committed waits for it, and is
    stored after it."""
    key = new_guest_key()
    session = new_session(api, guest=key)
    held, waiting = items(3), items(3)
    with ThreadPoolExecutor(1) as pool, db.connect() as conn:
        conn.execute(
            statement("responses/submit_response_guest"),
            {"session_id": session["sessionId"], "key_hash": hash_guest_key(key), "items": json.dumps(held)},
        )
        sending = pool.submit(send_batch, api, session["sessionId"], waiting, guest=key)
        wait_for_lock_waiters(db, 1)
        conn.commit()
        answer = sending.result()

    assert answer.status_code == 201, answer.text
    order = [str(r.id) for r in stored(db, session["sessionId"])]
    assert order == [item["responseId"] for item in held + waiting]


def test_createdat_strictly_increases_under_concurrent_batches_and_singles(api, db):
    key = new_guest_key()
    session = new_session(api, guest=key)
    sid = session["sessionId"]
    batch_senders, single_senders, rounds = 4, 4, 5
    barrier = threading.Barrier(batch_senders + single_senders)
    sent: dict[int, list[list[str]]] = {}  # per sender, its requests' responseIds in the order it sent them

    def send_batches(sender: int) -> None:
        http = requests.Session()  # one connection each, so that they really are simultaneous
        barrier.wait()
        for _ in range(rounds):
            batch = items(20, sender=sender)
            answer = http.post(
                api.url("submit_response"), json={"sessionId": sid, "responses": batch}, headers={"X-Guest-Key": key}
            )
            assert answer.status_code == 201, answer.text
            sent.setdefault(sender, []).append([item["responseId"] for item in batch])

    def send_singles(sender: int) -> None:
        http = requests.Session()
        barrier.wait()
        for i in range(rounds * 3):
            answer = http.post(
                api.url("submit_response"), json={"sessionId": sid, "data": {"i": i}}, headers={"X-Guest-Key": key}
            )
            assert answer.status_code == 201, answer.text
            sent.setdefault(sender, []).append([answer.json()["responseId"]])

    with ThreadPoolExecutor(batch_senders + single_senders) as pool:
        done = [pool.submit(send_batches, n) for n in range(batch_senders)]
        done += [pool.submit(send_singles, batch_senders + n) for n in range(single_senders)]
        for future in done:
            future.result()

    order = stored(db, sid)
    assert len(order) == batch_senders * rounds * 20 + single_senders * rounds * 3
    times = [r.created_at for r in order]
    assert len(set(times)) == len(times), "two responses of one session share a createdAt"
    position = {str(r.id): n for n, r in enumerate(order)}
    for requests_of_sender in sent.values():
        places = [[position[response_id] for response_id in request] for request in requests_of_sender]
        for request in places:  # a batch: its items in list order, one after the other
            assert request == list(range(request[0], request[0] + len(request)))
        assert [request[0] for request in places] == sorted(request[0] for request in places)


def test_exports_list_a_sessions_responses_in_the_order_they_were_stored(api, db, auth_emulator):
    key = new_guest_key()
    first, second = new_session(api, guest=key), new_session(api, guest=key)
    one, two, three = items(30), items(5), items(30)
    for session, batch in ((first, one), (second, two), (first, three)):
        assert send_batch(api, session["sessionId"], batch, guest=key).status_code == 201
    # The table's physical order is no guide (a restore or a rewrite may change it): here, reversed.
    with db.begin() as conn:
        conn.execute(text("CREATE TEMPORARY TABLE kept ON COMMIT DROP AS SELECT * FROM responses"))
        conn.execute(text("TRUNCATE responses"))
        conn.execute(text("INSERT INTO responses SELECT * FROM kept ORDER BY created_at DESC"))
    expected = [item["responseId"] for item in one + three + two]

    token = auth_emulator.researcher(True).id_token
    for format_ in ("jsonl", "csv"):
        answer = requests.get(
            api.url("export_data"),
            params={"format": format_, "table": "responses"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        )
        assert answer.status_code == 200, answer.text
        if format_ == "jsonl":
            exported = [json.loads(line)["responseId"] for line in answer.text.splitlines()]
        else:
            exported = [row["responseId"] for row in csv.DictReader(io.StringIO(answer.text))]
        assert exported == expected, format_

    mine = api.get("export_my_data", guest=key)
    assert mine.status_code == 200, mine.text
    by_session = {s["sessionId"]: [r["responseId"] for r in s["responses"]] for s in mine.json()["sessions"]}
    assert by_session == {first["sessionId"]: expected[:60], second["sessionId"]: expected[60:]}


def test_the_batch_form_is_as_openapi_yaml_says(api, db):
    from shared.web import bodies
    from tests.contract.test_openapi import conforms, schema

    for name, model in (("NewResponses", bodies.NewResponses), ("ResponseItem", bodies.ResponseItem)):
        assert set(schema(name)["properties"]) == set(model.model_fields)
        assert set(schema(name)["required"]) == {f for f, info in model.model_fields.items() if info.is_required()}
    assert schema("NewResponses")["properties"]["responses"]["maxItems"] == bodies.MAX_BATCH_RESPONSES
    key = new_guest_key()
    first, second = new_session(api, guest=key), new_session(api, guest=key)
    batch = items(3)
    conforms(send_batch(api, first["sessionId"], batch, guest=key), 201)
    conforms(send_batch(api, first["sessionId"], batch, guest=key), 200)
    assert conforms(send_batch(api, first["sessionId"], [*items(1), {}], guest=key), 400)["error"]["index"] == 1
    assert conforms(send_batch(api, second["sessionId"], batch[1:], guest=key), 409)["error"]["index"] == 0
    complete(db, first["sessionId"])
    conforms(send_batch(api, first["sessionId"], items(1), guest=key), 409, "conflict")
