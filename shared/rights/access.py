"""The right of access: a visitor's own data as one JSON document (export_my_data), made
while it is sent; how it streams and fails: docs/design/exports.md."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from shared.core.db import read_only_snapshot, statement
from shared.core.encodings import compact_json, rfc3339
from shared.core.errors import GuestClaimed, NotFound
from shared.web.auth import Caller, Guest, User

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

# Rows per FETCH of each cursor. What the export holds at once is about this many sessions
# (each at most 16 KiB of metadata), responses (each at most 64 KiB of data) and uploads,
# whatever the size of the whole document.
ROWS_PER_FETCH = 100
# The JSON text is handed on once this much is made.
CHUNK_BYTES = 64 * 1024

# shared/statements/: each kind of caller's sessions, and their responses and uploads in the same order.
_SESSIONS = {User: "access/sessions_user", Guest: "access/sessions_guest"}
_RESPONSES = {User: "access/responses_user", Guest: "access/responses_guest"}
_UPLOADS = {User: "access/uploads_user", Guest: "access/uploads_guest"}


def export_my_data(engine: Engine, caller: Caller) -> Iterator[bytes]:
    """The caller's own data as UTF-8 JSON text, in chunks (a generator: nothing runs
    until the first chunk is asked for), every part of it from one snapshot.

    Raises, before the first chunk: NotFound for a caller with nothing stored,
    GuestClaimed for a guest that a user has claimed, DependencyUnavailable when
    PostgreSQL is down. After it, any error ends the text early.
    """
    out = _Chunks(CHUNK_BYTES)
    with read_only_snapshot(engine) as conn:
        visitor, scope = _visitor(conn, caller)
        out.write("{" + _members(visitor) + ',"sessions":[')

        def rows(statements: dict) -> Any:
            return conn.execute(
                statement(statements[type(caller)]), scope, execution_options={"yield_per": ROWS_PER_FETCH}
            )

        responses, uploads = _Grouped(rows(_RESPONSES)), _Grouped(rows(_UPLOADS))
        for n, session in enumerate(rows(_SESSIONS)):
            out.write(("," if n else "") + "{" + _members(_session_json(session)) + ',"responses":[')
            for m, response in enumerate(responses.of(session.id)):
                out.write(("," if m else "") + compact_json(_response_json(response)))
                yield from out.full()
            out.write('],"uploads":' + compact_json([_upload_json(upload) for upload in uploads.of(session.id)]) + "}")
            yield from out.full()
        if responses.left or uploads.left:
            # The statements' orders disagree, so a response or an upload was not written. Never
            # expected; better a document that does not parse than one that omits data.
            raise RuntimeError("export_my_data: a response or an upload did not follow its session")
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
        "condition": row.condition,
        "outcome": row.outcome,
        "completedAt": rfc3339(row.completed_at) if row.completed_at is not None else None,
        "participant": _participant_json(row),
    }


def _participant_json(row) -> dict[str, Any] | None:
    """The platform ids the session was started with (SPEC §14.3), or null: the caller's own data."""
    if row.platform is None:
        return None
    return {
        "platform": row.platform,
        "participantId": row.participant_id,
        "studyId": row.study_id,
        "submissionId": row.submission_id,
        "assignmentId": row.assignment_id,
        "hitId": row.hit_id,
        "turkSubmitTo": row.turk_submit_to,
    }


def _response_json(row) -> dict[str, Any]:
    return {"responseId": str(row.id), "level": row.level, "data": row.data, "createdAt": rfc3339(row.created_at)}


def _upload_json(row) -> dict[str, Any]:
    return {
        "name": row.name,
        "contentType": row.content_type,
        "size": row.size,
        "uploadedAt": rfc3339(row.uploaded_at),
    }


def _members(fields: dict[str, Any]) -> str:
    """An object's members as JSON text without its braces, so that more can follow."""
    return ",".join(f"{compact_json(name)}:{compact_json(value)}" for name, value in fields.items())


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
