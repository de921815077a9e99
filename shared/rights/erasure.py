"""Withdrawal: erase a visitor from PostgreSQL, Firestore and Storage through a durable
ledger that any number of `resume` runs finish (docs/design/erasure.md)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from shared.core import config, failures, stores
from shared.core.db import statement, transaction
from shared.core.encodings import rfc3339
from shared.core.errors import Conflict, DependencyUnavailable, GuestClaimed, NotFound
from shared.core.logs import get_logger
from shared.core.stores import DEPENDENCY_DEADLINE_SECONDS, delete_object, firestore_retry, storage_call, storage_retry
from shared.web.auth import Caller, User

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

log = get_logger("erasure")

# Firestore: at most 30 values in an `in` filter, 500 writes in a batch.
_IN_FILTER_MAX = 30
_BATCH_MAX = 500
# Storage: one listing per session; this many at once.
STORAGE_THREADS = 8


@dataclass(frozen=True)
class Erasure:
    """An erasure as the ledger holds it."""

    erasure_id: uuid.UUID
    visitor_number: int | None
    requested_by: str
    requested_at: datetime
    completed_at: datetime | None
    sessions: int
    responses: int
    uploads: int | None  # rows of `uploads` deleted by part 1 (None: a ledger row from before they were)
    objects: int | None  # None until the Storage part is done
    attempts: int

    @property
    def status(self) -> str:
        return "done" if self.completed_at is not None else "pending"

    def to_json(self) -> dict[str, Any]:
        return {
            "erasureId": str(self.erasure_id),
            "status": self.status,
            "sessions": self.sessions,
            "responses": self.responses,
            "uploads": self.uploads,
            "objects": self.objects,
        }


@dataclass(frozen=True)
class OtherStores:
    """Where an erasure's Firestore and Storage parts run."""

    firestore: Any  # google.cloud.firestore.Client
    storage: Any  # google.cloud.storage.Client
    bucket: str

    @classmethod
    def of_instance(cls) -> OtherStores:
        """The instance's clients (made on first use) and STORAGE_BUCKET."""
        return cls(stores.firestore_client(), stores.storage_client(), config.required_storage_bucket())


# --- Requests ---------------------------------------------------------------


def erase_caller(engine: Engine, caller: Caller, stores: OtherStores) -> Erasure:
    """delete_my_data: erase the caller. NotFound if nothing is stored for it;
    GuestClaimed for the key of a guest a user claimed (its data is the user's now)."""
    if isinstance(caller, User):
        erased = erase_rows(engine, Target(user_id=caller.uid), "visitor")
    else:
        erased = erase_rows(engine, Target(key_hash=caller.key_hash), "visitor")
    return finish_or_pending(engine, erased, stores)


def erase_visitor_number(
    engine: Engine, number: int, stores: OtherStores, also: Callable[[Connection, Erasure], None] | None = None
) -> Erasure:
    """erase_visitor: erase whoever holds `number` now (a merged number resolves to
    the visitor it was merged into). NotFound if nobody does. `also(conn, erasure)` runs in
    the transaction that deletes the rows (the researchers' trail, shared.research.trail)."""
    for _attempt in range(3):
        with transaction(engine) as conn:
            holder = conn.execute(statement("erasure/holder"), {"number": number}).first()
        if holder is None:
            raise NotFound(f"No visitor holds number {number}.")
        try:
            erased = erase_rows(engine, Target(user_id=holder.user_id, key_hash=holder.key_hash), "researcher", also)
        except (GuestClaimed, NotFound):
            continue  # claimed or erased between the lookup and the lock: look again
        return finish_or_pending(engine, erased, stores)
    raise Conflict("The visitor changed while it was being erased; try again.")


def finish_or_pending(engine: Engine, erased: Erasure, stores: OtherStores) -> Erasure:
    """Run the Firestore and Storage parts of a just-made erasure now; the erasure as it
    stands after. If a store (or the database) fails, the rows are gone all the same
    and the ledger says what is left: the answer is `pending`, and `resume` finishes it."""
    try:
        finish(engine, erased.erasure_id, stores)
        return get(engine, erased.erasure_id)
    except DependencyUnavailable:
        log.warning("erasure left pending", extra={"fields": {"erasureId": str(erased.erasure_id)}})
        return erased


# --- Part 1: PostgreSQL -----------------------------------------------------


@dataclass(frozen=True)
class Target:
    """Whom to erase: a user (by uid) or a guest (by key hash)."""

    user_id: str | None = None
    key_hash: bytes | None = None


class NotEligible(Exception):
    """Raised by erase_rows_in when `still_eligible` says no: the transaction is rolled back
    and nothing is erased (retention found the visitor in use again, shared/ops/maintenance.py)."""


def erase_rows(
    engine: Engine, target: Target, requested_by: str, also: Callable[[Connection, Erasure], None] | None = None
) -> Erasure:
    """Part 1: delete the visitor's rows and write the ledger (and `also`), in one transaction."""
    with transaction(engine) as conn:
        erased = erase_rows_in(conn, target, requested_by)
        if also is not None:
            also(conn, erased)
    log_erased(erased)
    return erased


def erase_rows_in(
    conn: Connection,
    target: Target,
    requested_by: str,
    still_eligible: Callable[[Connection, list[str]], bool] | None = None,
) -> Erasure:
    """Part 1 inside the caller's transaction (which must commit for anything to happen).

    `still_eligible(conn, session_ids)`, when given, is asked once the visitor's rows and
    sessions are locked (nothing can add a session, a response or an upload to them
    until the transaction ends); False raises NotEligible before anything is deleted."""
    number, guests = _lock_visitor(conn, target)
    guest_ids = [str(g.id) for g in guests]
    # The anonymous accounts the user claimed (docs/api.md): their sessions carry its id now.
    claimed_users = (
        []
        if target.user_id is None
        else [row.id for row in conn.execute(statement("erasure/lock_claimed_users"), {"user_id": target.user_id})]
    )
    session_ids = [
        str(row.id)
        for row in conn.execute(statement("erasure/lock_sessions"), {"user_id": target.user_id, "guest_ids": guest_ids})
    ]
    if still_eligible is not None and not still_eligible(conn, session_ids):
        raise NotEligible()
    own = {number, *(g.visitor_number for g in guests)} - {None}
    merged = {
        row.from_number
        for row in conn.execute(
            statement("erasure/merged_numbers"), {"numbers": sorted(own), "user_id": target.user_id}
        )
    }
    numbers = sorted(own | merged)

    assignments = _lock_assignments(conn, session_ids)
    responses = conn.execute(statement("erasure/delete_responses"), {"session_ids": session_ids}).rowcount
    uploads = conn.execute(statement("erasure/delete_uploads"), {"session_ids": session_ids}).rowcount
    # Their platform ids (session_participants) go with them: ON DELETE CASCADE.
    # Prolific deliveries that are done go now; a pending one waits until it is (SPEC §14.5).
    conn.execute(statement("deliveries/delete_finished"), {"session_ids": session_ids})
    sessions = conn.execute(statement("erasure/delete_sessions"), {"session_ids": session_ids}).rowcount
    conn.execute(statement("erasure/delete_assignments"), {"assignment_ids": assignments})
    conn.execute(statement("erasure/delete_merges"), {"numbers": numbers, "user_id": target.user_id})
    conn.execute(statement("erasure/delete_guests"), {"guest_ids": guest_ids})
    if target.user_id is not None:
        conn.execute(statement("erasure/delete_claimed_users"), {"user_ids": claimed_users})
        conn.execute(statement("erasure/delete_claim_codes"), {"user_id": target.user_id})
        conn.execute(statement("erasure/delete_user"), {"user_id": target.user_id})

    erasure_id = uuid.uuid4()
    requested_at = conn.execute(
        statement("erasure/record"),
        {
            "erasure_id": str(erasure_id),
            "visitor_number": number,
            "merged_numbers": [n for n in numbers if n != number],
            "requested_by": requested_by,
            "sessions": sessions,
            "responses": responses,
            "uploads": uploads,
        },
    ).scalar_one()
    conn.execute(statement("erasure/tombstones"), {"erasure_id": str(erasure_id), "session_ids": session_ids})
    return Erasure(erasure_id, number, requested_by, requested_at, None, sessions, responses, uploads, None, 0)


def _lock_assignments(conn: Connection, session_ids: list[str]) -> list[int]:
    """The assignments of these sessions (SPEC §14.2), locked until the erasure commits."""
    return [row.id for row in conn.execute(statement("erasure/lock_assignments"), {"session_ids": session_ids})]


def log_erased(erased: Erasure) -> None:
    """The log line of a committed part 1 (no personal data: the ledger's own fields)."""
    log.info(
        "erased a visitor's rows",
        extra={
            "fields": {
                "erasureId": str(erased.erasure_id),
                "visitorNumber": erased.visitor_number,
                "requestedBy": erased.requested_by,
                "sessions": erased.sessions,
                "responses": erased.responses,
                "uploads": erased.uploads,
            }
        },
    )


def _lock_visitor(conn: Connection, target: Target) -> tuple[int | None, list]:
    """The visitor's number and guest rows, locked; NotFound if it has no record."""
    if target.user_id is not None:
        user = conn.execute(statement("erasure/lock_user"), {"user_id": target.user_id}).first()
        if user is None:
            raise NotFound("Nothing is stored for this account.")
        if user.claimed_by is not None:
            raise GuestClaimed(
                "This anonymous account's data now belongs to a signed-in account; sign in to withdraw it."
            )
        return user.visitor_number, list(
            conn.execute(statement("erasure/lock_claimed_guests"), {"user_id": target.user_id}).all()
        )
    guest = conn.execute(statement("erasure/lock_guest"), {"key_hash": target.key_hash}).first()
    if guest is None:
        raise NotFound("Nothing is stored for this guest key.")
    if guest.claimed_by is not None:
        raise GuestClaimed("This guest's data now belongs to a registered account; sign in to withdraw it.")
    return guest.visitor_number, [guest]


# --- Parts 2 and 3: Firestore and Storage -----------------------------------


def finish(engine: Engine, erasure_id: uuid.UUID, stores: OtherStores) -> bool:
    """Run what is left of one erasure; False if it is complete or another process holds it."""
    with transaction(engine) as conn:
        row = conn.execute(statement("erasure/lock"), {"erasure_id": str(erasure_id)}).first()
        if row is None:
            return False
        _finish_locked(conn, row, stores)
    return True


def _finish_locked(conn: Connection, row, stores: OtherStores) -> None:
    """The Firestore and Storage parts of the locked erasure `row`; each marked when done."""
    fields = {"erasureId": str(row.id)}
    session_ids = [str(r.session_id) for r in conn.execute(statement("erasure/sessions"), {"erasure_id": str(row.id)})]
    failed = False
    if row.firestore_erased_at is None:
        numbers = [n for n in [row.visitor_number, *row.merged_numbers] if n is not None]
        try:
            documents = erase_firestore(stores.firestore, session_ids, numbers)
        except DependencyUnavailable:
            failed = True
        else:
            conn.execute(statement("erasure/firestore_done"), {"erasure_id": str(row.id), "uploads": documents})
            log.info("erased the uploads documents", extra={"fields": {**fields, "uploadDocuments": documents}})
    if row.storage_erased_at is None:
        try:
            objects = erase_storage(stores.storage, stores.bucket, session_ids)
        except DependencyUnavailable:
            failed = True
        else:
            conn.execute(statement("erasure/storage_done"), {"erasure_id": str(row.id), "objects": objects})
            log.info("erased the stored objects", extra={"fields": {**fields, "objects": objects}})
    if failed:
        conn.execute(statement("erasure/attempt_failed"), {"erasure_id": str(row.id)})


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def erase_firestore(client, session_ids: list[str], numbers: Iterable[int]) -> int:
    """Delete the `uploads` documents of these sessions and `visitors/{n}` of these
    numbers; the number of uploads documents deleted. DependencyUnavailable if
    Firestore is unavailable (nothing is marked; running it again is safe)."""
    from google.api_core import exceptions
    from google.cloud.firestore_v1.base_query import FieldFilter

    try:
        uploads = []
        for chunk in _chunks(session_ids, _IN_FILTER_MAX):
            query = client.collection("uploads").where(filter=FieldFilter("sessionId", "in", chunk))
            uploads += [
                snapshot.reference
                for snapshot in query.stream(retry=firestore_retry(), timeout=DEPENDENCY_DEADLINE_SECONDS)
            ]
        refs = uploads + [client.collection("visitors").document(str(n)) for n in numbers]
        for chunk in _chunks(refs, _BATCH_MAX):
            batch = client.batch()
            for ref in chunk:
                batch.delete(ref)
            batch.commit(retry=firestore_retry(), timeout=DEPENDENCY_DEADLINE_SECONDS)
    except (exceptions.GoogleAPICallError, exceptions.RetryError) as error:
        raise failures.unavailable(
            "Firestore", error, "Firestore is unavailable; the erasure stays pending."
        ) from error
    return len(uploads)


def erase_storage(client, bucket: str, session_ids: list[str]) -> int:
    """Delete every object, every generation, under sessions/{id}/ of these sessions;
    the number deleted. DependencyUnavailable if Storage is unavailable."""
    # Imported here, not with the module: only an erasure needs threads, and `import main`
    # (every cold instance) need not pay for them.
    from concurrent.futures import ThreadPoolExecutor

    def erase_session(session_id: str) -> int:
        blobs = storage_call(
            "list",
            lambda: list(
                client.list_blobs(
                    bucket,
                    prefix=f"sessions/{session_id}/",
                    versions=True,
                    retry=storage_retry(),
                    timeout=DEPENDENCY_DEADLINE_SECONDS,
                )
            ),
        )
        return sum(delete_object(client, bucket, blob.name, blob.generation) for blob in blobs)

    with ThreadPoolExecutor(STORAGE_THREADS) as pool:
        return sum(pool.map(erase_session, session_ids))


# --- The ledger -------------------------------------------------------------


def get(engine: Engine, erasure_id: uuid.UUID) -> Erasure:
    with transaction(engine) as conn:
        row = conn.execute(statement("erasure/get"), {"erasure_id": str(erasure_id)}).one()
    return Erasure(
        row.id,
        row.visitor_number,
        row.requested_by,
        row.requested_at,
        row.completed_at,
        row.sessions,
        row.responses,
        row.uploads,
        row.objects,
        row.attempts,
    )


@dataclass(frozen=True)
class Resumed:
    """What one `resume` did."""

    completed: int  # erasures this run finished
    still_pending: int  # erasures this run tried and could not finish

    def line(self) -> str:
        return f"resume: {self.completed} erasure(s) completed, {self.still_pending} still pending"


def resume(engine: Engine, stores: OtherStores) -> Resumed:
    """Finish every pending erasure that no other process is finishing, oldest first,
    each tried once per run. Safe to run from several places at once."""
    tried: list[str] = []
    completed = 0
    while True:
        with transaction(engine) as conn:
            row = conn.execute(statement("erasure/next_pending"), {"tried": tried}).first()
            if row is None:
                break
            tried.append(str(row.id))
            _finish_locked(conn, row, stores)
        if get(engine, row.id).completed_at is not None:
            completed += 1
    return Resumed(completed, len(tried) - completed)


def status_line(engine: Engine) -> str:
    with transaction(engine) as conn:
        row = conn.execute(statement("erasure/status")).one()
    line = f"erasures: {row.done} done, {row.pending} pending"
    if row.pending:
        line += f" (oldest requested {rfc3339(row.oldest_pending_at)}, at most {row.most_attempts} failed tries)"
    return line
