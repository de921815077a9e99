"""export_data: a study's data for its researchers, streamed in one snapshot
(`python -m shared.export`); how and why it streams: docs/design/exports.md."""

from __future__ import annotations

import contextvars
import hashlib
import queue
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from shared.core.db import read_only_snapshot, statement, statement_text
from shared.core.encodings import compact_json, rfc3339
from shared.research.researchers import Scope
from shared.web.models import StudyQuery

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

# 2: sessions' study columns, test runs left out unless asked for, participant ids on request (SPEC §14.7).
SCHEMA_VERSION = 2
# The tables (SPEC §10), in the zip's order; each is COPY'd by shared/statements/export/{table}_{format}.sql,
# the sessions with their participant ids by export/sessions_with_ids_{format}.sql.
TABLES = ("responses", "sessions", "visitors", "uploads")
# With participantIds=true the zip also holds participants.csv: the platform ids of its sessions.
PARTICIPANTS = "participants"
MIMETYPES = {"zip": "application/zip", "csv": "text/csv", "jsonl": "application/x-ndjson"}
CHUNK_BYTES = 64 * 1024
QUEUE_CHUNKS = 16
# The longest a statement of an export may run: Cloud Run's longest request (60 minutes).
STATEMENT_TIMEOUT = "3600s"


@dataclass(frozen=True)
class Export:
    """An export ready to be sent: its file name, media type, and its bytes (made as
    they are asked for)."""

    filename: str
    mimetype: str
    chunks: Iterator[bytes]


def export_data(engine: Engine, scope: Scope, query: StudyQuery, now: datetime | None = None) -> Export:
    now = now or datetime.now(UTC)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    filters = {**scope.to_json(), "from": _time(query.start), "to": _time(query.end), "includeTest": query.include_test}
    settings = {
        "filter": compact_json(
            {
                "everything": scope.everything,
                "experiments": list(scope.experiments),
                "withoutExperiment": scope.without_experiment,
                "from": _time(query.start),
                "to": _time(query.end),
                "includeTest": query.include_test,
                "asOf": rfc3339(now),  # the sessions' status as of exportedAt
            }
        ),
        "statement_timeout": STATEMENT_TIMEOUT,
    }

    def produce(out: _Chunks) -> None:
        with read_only_snapshot(engine) as conn:
            conn.execute(statement("export/settings"), settings)
            tables = _Tables(conn, query.participant_ids)
            if query.format == "zip":
                manifest = {
                    "exportedAt": rfc3339(now),
                    "schemaVersion": SCHEMA_VERSION,
                    "filters": filters,
                    "participantIds": query.participant_ids,
                }
                _write_zip(tables, out, manifest)
            else:
                tables.write(query.table or "responses", query.format, out)

    if query.format == "zip":
        filename = f"study-export-{stamp}.zip"
    else:
        filename = f"{query.table}-{stamp}.{query.format}"
    return Export(filename, MIMETYPES[query.format], _streamed(produce))


def trail_details(scope: Scope, query: StudyQuery) -> dict:
    """What the researchers' trail records of an export (shared.research.trail): the filters as
    the manifest states them, the format and the table; `includeTest` and `participantIds` (an
    export of personal data) as true when asked for, absent otherwise."""
    asked = {"includeTest": query.include_test, "participantIds": query.participant_ids}
    return {
        **scope.to_json(),
        "from": _time(query.start),
        "to": _time(query.end),
        "format": query.format,
        "table": query.table,
        **{name: True for name, value in asked.items() if value},
    }


def _time(moment: datetime | None) -> str | None:
    return rfc3339(moment) if moment else None


def _write_zip(tables: _Tables, out: _Chunks, manifest: dict[str, Any]) -> None:
    """The four CSV files (five with participant ids) and manifest.json, as a zip written while it is read.

    Not in `with` blocks: a ZipFile closed on the way out of an error writes its
    central directory, and the files so far would open as a complete export. On an
    error the archive is left unfinished: no directory, which every unzip tool refuses."""
    files = {}
    archive = zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED)  # type: ignore[call-overload]
    made = time.localtime()[:6]  # the files' time in the archive (zip keeps local time)
    for table in (*TABLES, PARTICIPANTS) if tables.participant_ids else TABLES:
        info = zipfile.ZipInfo(f"{table}.csv", date_time=made)
        info.compress_type = zipfile.ZIP_DEFLATED  # at zlib's default level
        # force_zip64: the size is not known when the entry begins, and may pass 4 GiB.
        entry = archive.open(info, "w", force_zip64=True)
        counted = _Counted(entry)
        tables.write(table, "csv", counted)
        entry.close()
        files[info.filename] = {"rows": counted.rows, "bytes": counted.bytes, "sha256": counted.sha256.hexdigest()}
    archive.writestr("manifest.json", compact_json({**manifest, "files": files}) + "\n")
    archive.close()


class _Tables:
    """The tables of one export, each written as csv or jsonl to a binary sink by COPY; the
    sessions with their participant ids when `participant_ids`."""

    def __init__(self, conn: Connection, participant_ids: bool = False):
        self.conn = conn
        self.participant_ids = participant_ids

    def write(self, table: str, format_: str, sink) -> None:
        """COPY ... TO STDOUT into sink, with pg8000's own cursor (SQLAlchemy has no
        way to pass COPY a stream), in the same transaction. A COPY stopped midway
        (the client went away, the sink failed) leaves the connection in the middle
        of the protocol: it is closed, never pooled again."""
        name = "sessions_with_ids" if table == "sessions" and self.participant_ids else table
        cursor: Any = self.conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(
                statement_text(f"export/{name}_{format_}"), stream=sink if format_ == "csv" else _Unescaped(sink)
            )
        except BaseException:
            self.conn.invalidate()
            raise
        cursor.close()


class _Counted:
    """A zip entry's bytes, counted and hashed for the manifest. Its rows are its lines
    but the header: no cell can hold a raw line break (JSON text escapes them,
    experimentIds cannot have them, Cloud Storage refuses them in object names and
    content types)."""

    def __init__(self, entry):
        self.entry = entry
        self.bytes = 0
        self.lines = 0
        self.sha256 = hashlib.sha256()

    def write(self, data: bytes) -> None:
        self.entry.write(data)
        self.bytes += len(data)
        self.lines += data.count(b"\n")
        self.sha256.update(data)

    @property
    def rows(self) -> int:
        return max(self.lines - 1, 0)


class _Unescaped:
    """COPY's text format writes a backslash as two; the JSON text had one. Nothing else
    is escaped: JSON text holds no raw tab, newline or other control character. Each
    write is one whole row (one CopyData message), so a pair is never split."""

    def __init__(self, sink):
        self.sink = sink

    def write(self, data: bytes) -> None:
        self.sink.write(data.replace(b"\\\\", b"\\"))


# The thread that makes the export, and the queue between it and the response ----------


class _Cancelled(Exception):
    """The response is no longer read (the client went away, or the body was closed)."""


_END = object()


class _Chunks:
    """The export's bytes, in chunks of about CHUNK_BYTES, from the export's thread to
    the response, at most QUEUE_CHUNKS ahead of it."""

    def __init__(self):
        self.queue: queue.Queue = queue.Queue(QUEUE_CHUNKS)
        self.buffer = bytearray()
        self.cancelled = threading.Event()
        self.ended = False

    # the export's thread
    def write(self, data: bytes) -> int:
        if self.cancelled.is_set() or self.ended:  # (ended: an unfinished zip entry closed when collected)
            raise _Cancelled()
        self.buffer += data
        if len(self.buffer) >= CHUNK_BYTES:
            self.flush()
        return len(data)

    def flush(self) -> None:
        if self.buffer:
            self.queue.put(bytes(self.buffer))
            self.buffer.clear()

    def end(self, error: BaseException | None) -> None:
        if error is None:
            self.flush()
        self.ended = True
        self.queue.put(error or _END)

    # the response
    def __iter__(self) -> Iterator[bytes]:
        while (item := self.queue.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            yield item

    def cancel(self) -> None:
        """Stop the thread at its next write, and take what it still puts until it ends."""
        self.cancelled.set()
        while (item := self.queue.get()) is not _END and not isinstance(item, BaseException):
            pass


def _streamed(produce: Callable[[_Chunks], None]) -> Iterator[bytes]:
    """produce(out) run in a thread of its own, its bytes yielded here as they come."""
    out = _Chunks()
    finished = threading.Event()

    def run() -> None:
        try:
            produce(out)
        except BaseException as error:
            out.end(error)
        else:
            out.end(None)
        finally:
            finished.set()

    # The thread runs in a copy of this context, so its log lines keep the request's trace.
    thread = threading.Thread(target=contextvars.copy_context().run, args=(run,), name="export", daemon=True)
    thread.start()
    try:
        yield from out
    finally:
        if not finished.is_set():
            out.cancel()
        thread.join()
