"""The consistency audit (`python -m shared.audit`): count each kind of disagreement
between PostgreSQL, the bucket and Firestore, and with `--repair` mend what PostgreSQL
determines (docs/design/audit.md)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from shared.core import failures
from shared.core.db import read_only_snapshot, statement, transaction
from shared.core.errors import ServiceError
from shared.core.logs import get_logger
from shared.core.stores import (
    DEPENDENCY_DEADLINE_SECONDS,
    delete_object,
    firestore_retry,
    storage_retry,
)
from shared.visitors import upload_tickets, uploads

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

log = get_logger("audit")

KINDS = (
    "response_number",
    "session_number",
    "row_without_object",
    "object_without_row",
    "metadata_mismatch",
    "firestore_mismatch",
    "counter_mismatch",
    "erased_object",
    "unknown_session_object",
)
# What --repair may not mend: an object of a session that never existed (reported, never
# deleted), a row whose object is gone (nothing to derive it from), and an object without a row
# whose upload ticket does not verify.
UNMENDABLE = ("row_without_object", "unknown_session_object")

MIN_AGE_SECONDS = 600
# Rows, objects and numbers per page: each page is one short read-only transaction, one listing
# page and one Firestore get_all, so memory stays bounded whatever the size of the stores.
PAGE_SIZE = 500


@dataclass
class Report:
    """What one run found, mended and had to leave, per kind."""

    repair: bool
    found: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    mended: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    # Found, mendable by kind, but not mended: an object without a row whose ticket does not verify.
    refused: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    checked: dict[str, int] = field(default_factory=lambda: {"rows": 0, "objects": 0, "numbers": 0})

    def left(self) -> int:
        """Disagreements a repair should have mended and did not (0 without --repair: all found)."""
        if not self.repair:
            return sum(self.found.values())
        return sum(
            self.found[kind] - self.mended[kind] - self.refused[kind] for kind in KINDS if kind not in UNMENDABLE
        )

    def lines(self) -> list[str]:
        lines = []
        for kind in KINDS:
            line = f"{kind}: {self.found[kind]}"
            if self.repair and self.found[kind]:
                line += f" (mended {self.mended[kind]})"
            lines.append(line)
        return lines

    def to_log(self) -> dict[str, Any]:
        # Counts only: no uid, email, guest key or object name.
        answer: dict[str, Any] = {"repair": self.repair, "found": dict(self.found), "checked": dict(self.checked)}
        if self.repair:
            answer["mended"] = dict(self.mended)
            answer["left"] = self.left()
        return answer


@dataclass
class _Row:
    id: str
    session_id: str
    visitor_number: int | None
    name: str
    generation: int
    content_type: str | None
    size: int
    uploaded_at: datetime
    recorded_at: datetime
    experiment_id: str | None
    young: bool


class Audit:
    """One run over one bucket: PostgreSQL's numbers, then the bucket against the uploads rows
    and their Firestore documents, then the visitors' counters."""

    def __init__(
        self,
        engine: Engine,
        storage_client,
        firestore_client,
        bucket: str,
        tickets: uploads.TicketCheck,
        *,
        repair: bool = False,
        min_age_seconds: int = MIN_AGE_SECONDS,
        page_size: int = PAGE_SIZE,
        now: datetime | None = None,
    ):
        self.engine, self.storage, self.firestore = engine, storage_client, firestore_client
        self.bucket, self.tickets, self.page_size = bucket, tickets, page_size
        self.min_age = min_age_seconds
        self.cutoff = (now or datetime.now(UTC)) - timedelta(seconds=min_age_seconds)
        self.report = Report(repair)

    def run(self) -> Report:
        self.numbers()
        self.objects_and_rows()
        self.counters()
        log.info("audit", extra={"fields": self.report.to_log()})
        return self.report

    # --- PostgreSQL: responses and sessions ---------------------------------------------

    def numbers(self) -> None:
        found = self.report.found
        with read_only_snapshot(self.engine) as conn:
            found["session_number"] = conn.execute(statement("audit/session_numbers"), self._age()).scalar_one()
            found["response_number"] = conn.execute(statement("audit/response_numbers"), self._age()).scalar_one()
        if not self.report.repair or not (found["session_number"] or found["response_number"]):
            return
        # Sessions first: their responses (and uploads rows) then take the mended numbers.
        with transaction(self.engine) as conn:
            renumbered = [str(r.id) for r in conn.execute(statement("audit/repair_session_numbers"), self._age())]
            if renumbered:
                conn.execute(statement("audit/repair_upload_numbers"), {"session_ids": renumbered})
            responses = conn.execute(statement("audit/repair_response_numbers"), self._age()).rowcount
        self.report.mended["session_number"] = min(len(renumbered), found["session_number"])
        self.report.mended["response_number"] = min(responses, found["response_number"])

    def _age(self) -> dict[str, int]:
        return {"min_age": self.min_age}

    # --- The bucket, the uploads rows and their Firestore documents ----------------------

    def objects_and_rows(self) -> None:
        """Walk the listing and the rows side by side (both ordered by name, then generation),
        a page of pairs at a time."""
        chunk: list[tuple[_Row | None, Any]] = []
        for pair in self._pairs():
            chunk.append(pair)
            if len(chunk) >= self.page_size:
                self._check(chunk)
                chunk = []
        if chunk:
            self._check(chunk)

    def _pairs(self) -> Iterator[tuple[_Row | None, Any]]:
        rows, objects = self._rows(), self._objects()
        row, blob = next(rows, None), next(objects, None)
        while row is not None or blob is not None:
            if blob is None or (row is not None and (row.name, row.generation) < (blob.name, blob.generation)):
                yield row, None
                row = next(rows, None)
            elif row is None or (blob.name, blob.generation) < (row.name, row.generation):
                yield None, blob
                blob = next(objects, None)
            else:
                yield row, blob
                row, blob = next(rows, None), next(objects, None)

    def _rows(self) -> Iterator[_Row]:
        """The bucket's uploads rows in keyset pages, each read in a short read-only transaction."""
        after: tuple[str, int] = ("", -1)
        while True:
            with read_only_snapshot(self.engine) as conn:
                page = conn.execute(
                    statement("audit/rows_page"),
                    {"bucket": self.bucket, "name": after[0], "generation": after[1], "limit": self.page_size}
                    | self._age(),
                ).all()
            for r in page:
                yield _Row(
                    r.id,
                    str(r.session_id),
                    r.visitor_number,
                    r.name,
                    r.generation,
                    r.content_type,
                    r.size,
                    r.uploaded_at,
                    r.recorded_at,
                    r.experiment_id,
                    r.young,
                )
            if len(page) < self.page_size:
                return
            after = (page[-1].name, page[-1].generation)

    def _objects(self) -> Iterator[Any]:
        """The objects under sessions/, streamed page by page as the bucket lists them (by name)."""
        from google.api_core import exceptions

        listing = self.storage.list_blobs(
            self.bucket, prefix=uploads.SESSIONS_PREFIX, page_size=self.page_size, retry=storage_retry()
        )
        last = None
        try:
            for blob in listing:
                if last is not None and blob.name <= last:
                    raise ServiceError("the bucket did not list its objects in name order; the audit stopped")
                last = blob.name
                yield blob
        except (exceptions.GoogleAPICallError, exceptions.RetryError) as error:
            raise failures.unavailable(
                "Cloud Storage", error, "Cloud Storage is unavailable; run the audit again."
            ) from error

    def _young(self, blob) -> bool:
        return blob.time_created is None or blob.time_created > self.cutoff

    def _check(self, chunk: list[tuple[_Row | None, Any]]) -> None:
        # A pair with either side in flight (or an old object whose row is young: the trigger ran
        # late) is left for a later run.
        rows, pairs, alone = [], [], []
        for row, blob in chunk:
            if row is None:
                if not self._young(blob):
                    alone.append(blob)
            elif not row.young and not (blob is not None and self._young(blob)):
                rows.append(row)
                if blob is None:
                    self.report.found["row_without_object"] += 1
                else:
                    pairs.append((row, blob))
        self.report.checked["rows"] += len(rows)
        self.report.checked["objects"] += len(alone) + len(pairs)
        numbers = [n for _, blob in pairs if (n := _number((blob.metadata or {}).get("visitorNumber"))) is not None]
        resolved = self._resolve(numbers)
        for row, blob in pairs:
            self._check_metadata(row, blob, resolved)
        self._check_documents(rows)
        self._check_alone(alone)

    def _resolve(self, numbers: list[int]) -> dict[int, int]:
        if not numbers:
            return {}
        with read_only_snapshot(self.engine) as conn:
            found = conn.execute(statement("audit/resolve"), {"numbers": sorted(set(numbers))})
            return {r.start: r.number for r in found}

    def _check_metadata(self, row: _Row, blob, resolved: dict[int, int]) -> None:
        session = uploads.UploadSession(uuid.UUID(row.session_id), row.visitor_number, row.experiment_id)
        wanted = uploads.object_metadata(session, row.uploaded_at)
        current = dict(blob.metadata or {})
        if all(_agrees(key, current.get(key), value, row.visitor_number, resolved) for key, value in wanted.items()):
            return
        self.report.found["metadata_mismatch"] += 1
        if not self.report.repair:
            return
        if not uploads.write_tags(blob, wanted, row.generation):
            return  # replaced, deleted or re-tagged meanwhile: the next run looks again
        self.report.mended["metadata_mismatch"] += 1

    def _check_documents(self, rows: list[_Row]) -> None:
        if not rows:
            return
        collection = self.firestore.collection("uploads")
        documents = {
            snapshot.id: snapshot.to_dict() if snapshot.exists else None
            for snapshot in self._firestore(
                "read", lambda: list(self.firestore.get_all([collection.document(row.id) for row in rows]))
            )
        }
        resolved = self._resolve(
            [n for d in documents.values() if d and isinstance(n := d.get("visitorNumber"), int) and n > 0]
        )
        wrong = [row for row in rows if not _document_agrees(documents.get(row.id), row, self.bucket, resolved)]
        self.report.found["firestore_mismatch"] += len(wrong)
        if not (self.report.repair and wrong):
            return
        batch = self.firestore.batch()
        for row in wrong:
            batch.set(collection.document(row.id), _document(row, self.bucket))
        self._firestore("write", lambda: batch.commit(retry=firestore_retry(), timeout=DEPENDENCY_DEADLINE_SECONDS))
        self.report.mended["firestore_mismatch"] += len(wrong)

    def _check_alone(self, alone: list[Any]) -> None:
        """Objects without a row: of a session (a missing row), of an erased one, or of none."""
        by_session: dict[str, list[Any]] = {}
        for blob in alone:
            try:
                by_session.setdefault(str(uploads.session_id_of(blob.name)), []).append(blob)
            except uploads.Ignored:
                self.report.found["unknown_session_object"] += 1  # not sessions/{uuid}/...: no session
        if not by_session:
            return
        with read_only_snapshot(self.engine) as conn:
            known = conn.execute(statement("audit/sessions_of"), {"session_ids": list(by_session)}).all()
        for session in known:
            blobs = by_session[session.id]
            kind = "object_without_row" if session.live else "erased_object" if session.erased else None
            self.report.found[kind or "unknown_session_object"] += len(blobs)
            if not self.report.repair or kind is None:
                continue
            for blob in blobs:
                if kind == "erased_object":
                    delete_object(self.storage, self.bucket, blob.name, blob.generation)
                    self.report.mended[kind] += 1
                elif self._record(blob):
                    self.report.mended[kind] += 1
                else:
                    self.report.refused[kind] += 1

    def _record(self, blob) -> bool:
        """Record an object's missing row as the storage trigger would, when its ticket verifies
        (or with UPLOAD_TICKETS=off): the trigger's own code, so also its tags and Firestore part."""
        if self.tickets.mode != "off":
            assert self.tickets.key is not None
            if upload_tickets.problem(self.tickets.key, blob.name, blob.metadata, blob.time_created):
                return False
        data = {
            "bucket": self.bucket,
            "name": blob.name,
            "generation": str(blob.generation),
            "metadata": blob.metadata,
            "timeCreated": blob._properties.get("timeCreated"),
        }
        outcome = uploads.record_upload(
            {"type": uploads.FINALIZED},
            data,
            engine=self.engine,
            storage_client=self.storage,
            firestore_client=self.firestore,
            tickets=self.tickets,
        )
        return outcome.status in ("recorded", "duplicate")

    # --- The visitors' counters -------------------------------------------------------

    def counters(self) -> None:
        """Each current number's rows against the uploadCount of its document and of the
        documents of the numbers merged into it (a merge moves no count: docs/design/audit.md)."""
        after = 0
        visitors = self.firestore.collection("visitors")
        while True:
            with read_only_snapshot(self.engine) as conn:
                page = conn.execute(statement("audit/counters_page"), {"after": after, "limit": self.page_size}).all()
            ids = [str(n) for r in page for n in (r.number, *r.merged_from)]
            counts = {
                snapshot.id: int((snapshot.to_dict() or {}).get("uploadCount") or 0)
                for snapshot in self._firestore(
                    "read", lambda ids=ids: list(self.firestore.get_all([visitors.document(i) for i in ids]))
                )
                if snapshot.exists
            }
            self.report.checked["numbers"] += len(page)
            for r in page:
                numbers = [str(n) for n in (r.number, *r.merged_from)]
                if sum(counts.get(n, 0) for n in numbers) != r.rows:
                    self._recheck_counter(r.number, numbers)
            if len(page) < self.page_size:
                return
            after = page[-1].number

    def _recheck_counter(self, number: int, numbers: list[str]) -> None:
        """A counter that disagrees, looked at again under the number's upload lock (the one the
        storage trigger holds from its Firestore write to its commit), so that an upload in flight
        is not taken for a disagreement; mended while the lock is held."""
        visitors = self.firestore.collection("visitors")
        with transaction(self.engine) as conn:
            conn.execute(statement("uploads/lock_visitor"), {"visitor_number": number})
            rows, last = conn.execute(statement("audit/counter"), {"number": number}).one()
            snapshots = self._firestore(
                "read", lambda: list(self.firestore.get_all([visitors.document(n) for n in numbers]))
            )
            counted = sum(int((s.to_dict() or {}).get("uploadCount") or 0) for s in snapshots if s.exists)
            if counted == rows:
                return
            self.report.found["counter_mismatch"] += 1
            if not self.report.repair:
                return
            batch = self.firestore.batch()
            batch.set(
                visitors.document(str(number)),
                {"visitorNumber": number, "uploadCount": rows, "lastUploadAt": last},
                merge=True,
            )
            for snapshot in snapshots:
                if snapshot.exists and snapshot.id != str(number):
                    batch.update(visitors.document(snapshot.id), {"uploadCount": 0})
            self._firestore("write", lambda: batch.commit(retry=firestore_retry(), timeout=DEPENDENCY_DEADLINE_SECONDS))
            self.report.mended["counter_mismatch"] += 1

    def _firestore(self, what: str, call):
        from google.api_core import exceptions

        try:
            return call()
        except (exceptions.GoogleAPICallError, exceptions.RetryError) as error:
            raise failures.unavailable(
                f"Firestore ({what})", error, "Firestore is unavailable; run the audit again."
            ) from error


def _number(value: Any) -> int | None:
    return int(value) if isinstance(value, str) and value.isdigit() else None


def _agrees(key: str, have: Any, want: str | None, row_number: int | None, resolved: dict[int, int]) -> bool:
    """Whether one metadata key agrees with the row: equal, or for visitorNumber a merged-from
    number that resolves to the row's."""
    if have == want:
        return True
    if key != "visitorNumber" or row_number is None:
        return False
    number = _number(have)
    return number is not None and resolved.get(number) == row_number


def _document(row: _Row, bucket: str) -> dict[str, Any]:
    """The Firestore `uploads/{id}` document of a row, as record_in_firestore writes it."""
    return {
        "bucket": bucket,
        "name": row.name,
        "generation": str(row.generation),
        "contentType": row.content_type,
        "size": row.size,
        "sessionId": row.session_id,
        "visitorNumber": row.visitor_number,
        "experimentId": row.experiment_id,
        "uploadedAt": row.uploaded_at,
        "recordedAt": row.recorded_at,
    }


def _document_agrees(document: dict[str, Any] | None, row: _Row, bucket: str, resolved: dict[int, int]) -> bool:
    if document is None:
        return False
    wanted = _document(row, bucket)
    for key in ("bucket", "name", "generation", "contentType", "size", "sessionId", "experimentId", "uploadedAt"):
        if document.get(key) != wanted[key]:
            return False
    number = document.get("visitorNumber")
    if number != row.visitor_number and not (
        isinstance(number, int) and row.visitor_number is not None and resolved.get(number) == row.visitor_number
    ):
        return False
    return True
