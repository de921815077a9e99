"""The right of access: a visitor's own data as one JSON document (export_my_data), made
while it is sent; how it streams and fails: docs/design/exports.md."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from shared.core import failures
from shared.core.db import read_only_snapshot, statement
from shared.core.encodings import compact_json, rfc3339
from shared.core.errors import GuestClaimed, NotFound
from shared.web.auth import Caller, Guest, User

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

# Firestore's `in` filter takes at most 30 values: one uploads query per batch of sessions.
SESSIONS_PER_BATCH = 30
# Rows per FETCH of the responses cursor. What the export holds at once is about this
# many responses (each at most 64 KiB of data) and one batch of sessions (each at most
# 16 KiB of metadata) with their uploads, whatever the size of the whole document.
RESPONSES_PER_FETCH = 100
# The JSON text is handed on once this much is made (and at the end of each batch).
CHUNK_BYTES = 64 * 1024
# A Firestore query that cannot be answered within this many seconds answers 503.
FIRESTORE_DEADLINE_SECONDS = 5.0

# shared/statements/: each kind of caller's sessions, and their responses in the same order.
_SESSIONS = {User: "access/sessions_user", Guest: "access/sessions_guest"}
_RESPONSES = {User: "access/responses_user", Guest: "access/responses_guest"}


def export_my_data(engine: Engine, firestore_client, caller: Caller) -> Iterator[bytes]:
    """The caller's own data as UTF-8 JSON text, in chunks (a generator: nothing runs
    until the first chunk is asked for).

    Raises, before the first chunk: NotFound for a caller with nothing stored,
    GuestClaimed for a guest that a user has claimed, DependencyUnavailable when
    PostgreSQL or Firestore is down. After it, any error ends the text early.
    """
    out = _Chunks(CHUNK_BYTES)
    with read_only_snapshot(engine) as conn:
        visitor, scope = _visitor(conn, caller)
        out.write("{" + _members(visitor) + ',"sessions":[')
        sessions = conn.execute(
            statement(_SESSIONS[type(caller)]), scope, execution_options={"yield_per": SESSIONS_PER_BATCH}
        )
        responses = _Grouped(
            conn.execute(
                statement(_RESPONSES[type(caller)]), scope, execution_options={"yield_per": RESPONSES_PER_FETCH}
            )
        )
        separator = ""
        for batch in sessions.partitions(SESSIONS_PER_BATCH):
            uploads = uploads_of_sessions(firestore_client, [str(session.id) for session in batch])
            for session in batch:
                out.write(separator + "{" + _members(_session_json(session)) + ',"responses":[')
                separator = ","
                for n, response in enumerate(responses.of(session.id)):
                    out.write(("," if n else "") + compact_json(_response_json(response)))
                    yield from out.full()
                out.write('],"uploads":' + compact_json(uploads.get(str(session.id), [])) + "}")
                yield from out.full()
            yield from out.everything()  # this batch is sent before the next one's uploads are read
        if responses.left:
            # The two statements' orders disagree, so a response was not written. Never
            # expected; better a document that does not parse than one that omits data.
            raise RuntimeError("export_my_data: a response did not follow its session")
        out.write("]}")
        yield from out.everything()


def _visitor(conn: Connection, caller: Caller) -> tuple[dict[str, Any], dict[str, Any]]:
    """The document's first members, and the parameters that select the caller's rows."""
    if isinstance(caller, User):
        row = conn.execute(statement("access/user"), {"user_id": caller.uid}).first()
        if row is None:
            raise NotFound("Nothing is stored for you: no session was ever created with these credentials.")
        if row.claimed_by is not None:
            raise GuestClaimed(
                "This anonymous account's data now belongs to a signed-in account; sign in to export it."
            )
        return (
            {
                "visitorNumber": row.visitor_number,
                "userId": row.id,
                "guestId": None,
                "email": row.email,
                "displayName": row.display_name,
            },
            {"user_id": row.id},
        )
    row = conn.execute(statement("access/guest"), {"key_hash": caller.key_hash}).first()
    if row is None:
        raise NotFound("Nothing is stored for you: no session was ever created with this guest key.")
    if row.claimed_by is not None:
        raise GuestClaimed("This guest's data now belongs to a registered account; sign in to export it.")
    return (
        {
            "visitorNumber": row.visitor_number,
            "userId": None,
            "guestId": str(row.id),
            "email": None,
            "displayName": None,
        },
        {"guest_id": row.id},
    )


def _session_json(row) -> dict[str, Any]:
    return {
        "sessionId": str(row.id),
        "experimentId": row.experiment_id,
        "metadata": row.metadata,
        "createdAt": rfc3339(row.created_at),
    }


def _response_json(row) -> dict[str, Any]:
    return {"responseId": str(row.id), "level": row.level, "data": row.data, "createdAt": rfc3339(row.created_at)}


def _members(fields: dict[str, Any]) -> str:
    """An object's members as JSON text without its braces, so that more can follow."""
    return ",".join(f"{compact_json(name)}:{compact_json(value)}" for name, value in fields.items())


def uploads_of_sessions(firestore_client, session_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """The uploads of these sessions (at most SESSIONS_PER_BATCH) as export_my_data
    shows them, by sessionId, each list in the order the files were uploaded."""
    return {
        session_id: [
            {
                "name": document.get("name"),
                "contentType": document.get("contentType"),
                "size": document.get("size"),
                "uploadedAt": rfc3339(document["uploadedAt"]) if document.get("uploadedAt") else None,
            }
            for _upload_id, document in documents
        ]
        for session_id, documents in upload_documents(firestore_client, session_ids).items()
    }


def upload_documents(firestore_client, session_ids: list[str]) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """The `uploads` documents (id, fields) of these sessions (at most SESSIONS_PER_BATCH),
    by sessionId, each list in the order the files were uploaded. DependencyUnavailable
    if Firestore is down.

    Sorted here rather than by the query: ordering an `in` query on another field
    would need a composite index in Firestore."""
    from google.api_core import exceptions
    from google.cloud.firestore import FieldFilter

    if not session_ids:
        return {}
    assert len(session_ids) <= SESSIONS_PER_BATCH
    query = firestore_client.collection("uploads").where(filter=FieldFilter("sessionId", "in", session_ids))
    try:
        documents = [
            (snapshot.id, snapshot.to_dict())
            for snapshot in query.stream(retry=_firestore_retry(), timeout=FIRESTORE_DEADLINE_SECONDS)
        ]
    except (exceptions.GoogleAPICallError, exceptions.RetryError) as error:
        raise failures.unavailable("Firestore", error, "Firestore is unavailable; try again shortly.") from error
    by_session: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for upload_id, document in sorted(documents, key=lambda item: _upload_order(item[1])):
        by_session.setdefault(document.get("sessionId"), []).append((upload_id, document))
    return by_session


def _upload_order(document: dict[str, Any]):
    uploaded = document.get("uploadedAt")
    return (
        uploaded is None,
        uploaded.timestamp() if uploaded else 0.0,
        document.get("name") or "",
        document.get("generation") or "",
    )


def _firestore_retry():
    """Firestore's transient errors retried for FIRESTORE_DEADLINE_SECONDS at most."""
    from google.api_core import exceptions
    from google.api_core import retry as retries

    return retries.Retry(
        initial=0.1,
        maximum=1.0,
        multiplier=2.0,
        timeout=FIRESTORE_DEADLINE_SECONDS,
        predicate=retries.if_exception_type(
            exceptions.ServiceUnavailable,
            exceptions.ResourceExhausted,
            exceptions.InternalServerError,
            exceptions.DeadlineExceeded,
        ),
    )


class _Grouped:
    """Rows ordered by session, taken one session's rows at a time."""

    def __init__(self, rows):
        self._rows = iter(rows)
        self._next = next(self._rows, None)

    def of(self, session_id) -> Iterator:
        """The rows of this session, if they come next."""
        while self._next is not None and self._next.session_id == session_id:
            row, self._next = self._next, next(self._rows, None)
            yield row

    @property
    def left(self) -> bool:
        return self._next is not None


class _Chunks:
    """JSON text collected in pieces and handed on as UTF-8 bytes of about `size`."""

    def __init__(self, size: int):
        self.size = size
        self.parts: list[str] = []
        self.length = 0

    def write(self, text: str) -> None:
        self.parts.append(text)
        self.length += len(text)

    def full(self) -> Iterator[bytes]:
        """The text so far, if there is at least `size` of it."""
        if self.length >= self.size:
            yield from self.everything()

    def everything(self) -> Iterator[bytes]:
        """The text so far, if any."""
        if self.parts:
            text, self.parts, self.length = "".join(self.parts), [], 0
            yield text.encode("utf-8")
