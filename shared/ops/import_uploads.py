"""Bring the uploads that Firestore recorded before PostgreSQL had table `uploads` into it, once
(`python -m shared.import_uploads`; idempotent and resumable: docs/operations.md)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from shared.core import failures
from shared.core.db import statement, transaction
from shared.core.errors import ServiceError
from shared.core.logs import get_logger
from shared.visitors.uploads import upload_id

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

log = get_logger("import_uploads")

# Documents per Firestore query and per PostgreSQL transaction: a few hundred keep both short
# and the command's memory bounded whatever the size of the collection.
PAGE_SIZE = 300
# Each page's query: Firestore answers a page of a few hundred documents in well under a second.
QUERY_TIMEOUT_SECONDS = 30.0
_MALFORMED_IDS_LOGGED = 20


@dataclass
class Summary:
    """What one run did with the documents it read."""

    imported: int = 0  # rows inserted by this run
    present: int = 0  # rows already there (an earlier run, or the storage trigger)
    erased: int = 0  # documents of erased sessions: skipped
    unknown: int = 0  # documents of sessions that never existed: skipped
    malformed: list[str] = field(default_factory=list)  # ids of documents without a usable upload
    pages: int = 0

    def line(self) -> str:
        line = (
            f"import-uploads: {self.imported} imported, {self.present} already present, "
            f"{self.erased + self.unknown} skipped ({self.erased} of erased sessions, "
            f"{self.unknown} of unknown sessions)"
        )
        if self.malformed:
            line += f", {len(self.malformed)} malformed left out (their ids are in the log)"
        return line

    def to_log(self) -> dict[str, Any]:
        # Counts and document ids (hashes of bucket, name and generation) only: no uid or email.
        return {
            "imported": self.imported,
            "alreadyPresent": self.present,
            "skippedErased": self.erased,
            "skippedUnknown": self.unknown,
            "malformed": len(self.malformed),
            "malformedIds": self.malformed[:_MALFORMED_IDS_LOGGED],
            "pages": self.pages,
        }


def import_uploads(engine: Engine, firestore_client, page_size: int = PAGE_SIZE) -> Summary:
    """Insert a row for every `uploads/{uploadId}` document whose session exists, page by page.

    Each page is one transaction, and a row that exists is left as it is (ON CONFLICT DO
    NOTHING), so a run stopped anywhere leaves whole pages behind, and the next run imports
    what is left and each upload exactly once."""
    summary = Summary()
    for documents in _pages(firestore_client, page_size):
        rows = []
        for document in documents:
            row = _row(document.id, document.to_dict() or {})
            if row is None:
                summary.malformed.append(document.id)
            else:
                rows.append(row)
        if rows:
            with transaction(engine) as conn:
                counts = conn.execute(statement("import_uploads/insert_page"), {"page": json.dumps(rows)}).one()
            summary.imported += counts.imported
            summary.present += counts.present
            summary.erased += counts.erased
            summary.unknown += counts.unknown
        summary.pages += 1
    log.info("imported uploads from Firestore", extra={"fields": summary.to_log()})
    return summary


def _pages(client, page_size: int) -> Iterator[list]:
    """The `uploads` collection in pages ordered by document id, each the documents after the
    previous page's last: `where("__name__", ">", last)`, a range on the document id.

    A range filter rather than a start_after cursor: local emulators that ignore cursors would
    answer the first page again (devtools/firestore_emulator.js teaches ours `__name__`). The
    document id is a field path that queries may order and filter by (FieldPath.documentId(),
    https://cloud.google.com/nodejs/docs/reference/firestore/latest/firestore/fieldpath), and
    a range is what https://firebase.google.com/docs/firestore/query-data/query-cursors says
    to use for one."""
    from google.api_core import exceptions
    from google.cloud.firestore_v1.base_query import FieldFilter

    from shared.core.stores import firestore_retry

    uploads = client.collection("uploads")
    last = None
    while True:
        query = uploads.order_by("__name__").limit(page_size)
        if last is not None:
            query = query.where(filter=FieldFilter("__name__", ">", last.reference))
        try:
            page = list(query.stream(retry=firestore_retry(), timeout=QUERY_TIMEOUT_SECONDS))
        except (exceptions.GoogleAPICallError, exceptions.RetryError) as error:
            raise failures.unavailable(
                "Firestore", error, "Firestore is unavailable; every page before this one is imported, run it again."
            ) from error
        ids = [document.id for document in page]
        # A server that ignored the range or the order would repeat pages or skip documents.
        if ids != sorted(ids) or (last is not None and ids and ids[0] <= last.id):
            raise ServiceError(
                "Firestore did not answer the uploads in document-id order after the last page; "
                "nothing more was imported"
            )
        if page:
            yield page
        if len(page) < page_size:
            return
        last = page[-1]


def _row(document_id: str, document: dict[str, Any]) -> dict[str, Any] | None:
    """The uploads row of one document as the storage trigger wrote it (shared/visitors/uploads.py,
    record_in_firestore); None if it does not hold one."""
    bucket, name, generation = document.get("bucket"), document.get("name"), document.get("generation")
    session_id, size, content_type = document.get("sessionId"), document.get("size", 0), document.get("contentType")
    uploaded_at, recorded_at = document.get("uploadedAt"), document.get("recordedAt")
    if not (isinstance(bucket, str) and bucket and isinstance(name, str) and name):
        return None
    if isinstance(generation, bool) or not isinstance(generation, (str, int)) or not str(generation).isdigit():
        return None
    if document_id != upload_id(bucket, name, int(generation)):
        return None  # not the id the trigger gives this object: a row under it would never match
    if not isinstance(session_id, str) or _uuid(session_id) is None:
        return None
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        return None
    if content_type is not None and not isinstance(content_type, str):
        return None
    if not isinstance(uploaded_at, datetime) or not (recorded_at is None or isinstance(recorded_at, datetime)):
        return None
    return {
        "id": document_id,
        "session_id": str(_uuid(session_id)),
        "bucket": bucket,
        "name": name,
        "generation": int(generation),
        "content_type": content_type,
        "size": size,
        # isoformat keeps the microseconds and the offset; Firestore's times are in UTC.
        "uploaded_at": uploaded_at.isoformat(),
        "recorded_at": None if recorded_at is None else recorded_at.isoformat(),
    }


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None
