"""A withdrawal racing the visitor's own requests, through the real server (SPEC §11):
delete_my_data sent at the same moment as create_session, submit_response or
register for the same guest, 50 rounds each. Whatever the order the database
picks, nothing of the erased visitor is left behind and nothing answers 500.

A request that PostgreSQL orders before the erasure is erased with it; one ordered
after finds nothing (404), or - create_session with the key again - starts a new
visitor with a new number, as a returning browser that kept the key would."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.erasure_support import Traces, rows_left
from tests.support import new_guest_key, new_session, rows, scalar

ROUNDS = 50


def at_once(*sends):
    """Run each send(client) on its own kept-alive connection, released together."""
    barrier = threading.Barrier(len(sends))
    clients = [requests.Session() for _ in sends]

    def run(pair):
        send, client = pair
        barrier.wait()
        return send(client)

    with ThreadPoolExecutor(len(sends)) as pool:
        return list(pool.map(run, zip(sends, clients)))


def withdraw(api, key):
    return lambda client: client.post(api.url("delete_my_data"), json={}, headers={"X-Guest-Key": key}, timeout=60)


def traces_of(session: dict) -> Traces:
    traces = Traces()
    traces.add_session(session)
    return traces


@pytest.mark.slow
def test_withdrawal_racing_create_session_leaves_nothing_of_the_visitor(api, db, firestore, bucket):
    orders = {"before": 0, "after": 0}
    for _ in range(ROUNDS):
        key = new_guest_key()
        first = new_session(api, guest=key)
        traces = traces_of(first)

        erased, created = at_once(
            withdraw(api, key),
            lambda client: client.post(api.url("create_session"), json={}, headers={"X-Guest-Key": key}, timeout=60),
        )

        assert erased.status_code == 202, erased.text
        assert created.status_code == 201, created.text
        session = created.json()
        if session["visitorNumber"] == first["visitorNumber"]:
            orders["before"] += 1  # created before the erasure: erased with it
            assert erased.json()["sessions"] == 2
            traces.add_session(session)
        else:
            orders["after"] += 1  # after it: a new visitor with a new number, which stays
            assert erased.json()["sessions"] == 1
            assert session["visitorNumber"] > first["visitorNumber"]
            assert session["guestId"] != first["guestId"]
            assert rows(db, "SELECT id FROM sessions WHERE visitor_number = :n", n=session["visitorNumber"]) == [
                (uuid.UUID(session["sessionId"]),)
            ]
        assert rows_left(db, traces) == []
    assert sum(orders.values()) == ROUNDS


@pytest.mark.slow
def test_withdrawal_racing_submit_response_leaves_no_response(api, db, firestore, bucket):
    outcomes = {201: 0, 404: 0}
    for _ in range(ROUNDS):
        key = new_guest_key()
        session = new_session(api, guest=key)

        erased, submitted = at_once(
            withdraw(api, key),
            lambda client: client.post(
                api.url("submit_response"),
                json={"sessionId": session["sessionId"], "data": {"late": True}},
                headers={"X-Guest-Key": key},
                timeout=60,
            ),
        )

        assert erased.status_code == 202, erased.text
        assert submitted.status_code in (201, 404), submitted.text
        outcomes[submitted.status_code] += 1
        # A response stored first is counted by the erasure and gone with it.
        assert erased.json()["responses"] == (1 if submitted.status_code == 201 else 0)
        assert rows_left(db, traces_of(session)) == []
        assert scalar(db, "SELECT count(*) FROM responses") == 0
    assert sum(outcomes.values()) == ROUNDS


@pytest.mark.slow
def test_withdrawal_racing_register_either_erases_the_guest_or_leaves_it_to_the_user(
    api, db, auth_emulator, firestore, bucket
):
    """Ordered first, register claims the guest: its data is the user's now and the guest
    key may no longer withdraw it (403 guest_claimed). Ordered first, the erasure leaves
    nothing for register to claim. Either way no session of the guest is left unowned."""
    orders = {"claimed": 0, "erased": 0}
    for _ in range(ROUNDS):
        key = new_guest_key()
        session = new_session(api, guest=key)
        user = auth_emulator.new_user()

        erased, registered = at_once(
            withdraw(api, key),
            lambda client: client.post(
                api.url("register"),
                json={},
                timeout=60,
                headers={"Authorization": f"Bearer {user.id_token}", "X-Guest-Key": key},
            ),
        )

        assert registered.status_code == 201, registered.text
        if registered.json()["migrated"]:
            orders["claimed"] += 1
            assert erased.status_code == 403 and erased.json()["error"]["code"] == "guest_claimed"
            assert rows(db, "SELECT user_id FROM sessions WHERE id = :s", s=session["sessionId"]) == [(user.uid,)]
        else:
            orders["erased"] += 1
            assert erased.status_code == 202, erased.text
            assert erased.json()["sessions"] == 1
            assert rows_left(db, traces_of(session)) == []
        assert scalar(db, "SELECT count(*) FROM sessions WHERE user_id IS NULL") == 0
        assert scalar(db, "SELECT count(*) FROM guests WHERE claimed_by IS NULL") == 0
    assert sum(orders.values()) == ROUNDS
