"""Uploads: what happens when a file lands in Cloud Storage under sessions/{sessionId}/: check
its upload ticket, tag it, record it in PostgreSQL and Firestore, exactly once per generation
(docs/design/uploads.md)."""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from shared.core import failures
from shared.core.db import statement, transaction
from shared.core.encodings import rfc3339
from shared.core.errors import DependencyUnavailable
from shared.core.logs import get_logger
from shared.core.stores import DEPENDENCY_DEADLINE_SECONDS, delete_object, firestore_retry, storage_call, storage_retry
from shared.visitors import upload_tickets

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

log = get_logger("uploads")

FINALIZED = "google.cloud.storage.object.v1.finalized"
SESSIONS_PREFIX = "sessions/"  # what the tickets guard: every object under it (UPLOAD_TICKETS)

# A session id in a path is matched in its canonical lower-case spelling only, the one
# erasure deletes (sessions/{id}/, shared/rights/erasure.py); any other spelling is outside.
_SESSION_OBJECT = re.compile(
    r"sessions/(?P<session_id>[0-9a-f]{8}-(?:[0-9a-f]{4}-){3}[0-9a-f]{12})/(?P<file_name>.+)", re.DOTALL
)

_TAG_ATTEMPTS = 5  # re-reads after a metadata precondition failed (someone else changed it)


class Ignored(Exception):
    """A permanent reason not to handle an event: it is logged (a warning) and acknowledged."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class Unrelated(Ignored):
    """An event about an object this product does not own (outside sessions/): a
    normal occurrence, logged at INFO and acknowledged."""


class Erased(Ignored):
    """The object belongs to a session that was erased (docs/participants-rights.md): the object is
    deleted, nothing is recorded, and the event is acknowledged."""


class UnknownSession(Ignored):
    """No session has the object's session id (and none was erased): acknowledged; with
    UPLOAD_TICKETS=enforce the object is deleted too."""


class Refused(Ignored):
    """An object under sessions/ without a valid upload ticket, with UPLOAD_TICKETS=enforce: the
    object is deleted, nothing is recorded, and the event is acknowledged."""


@dataclass(frozen=True)
class TicketCheck:
    """What the trigger does with upload tickets: UPLOAD_TICKETS's mode (enforce, monitor, off)
    and the key they are signed with (UPLOAD_TICKET_KEY; None with off)."""

    mode: str
    key: bytes | None = None

    def __post_init__(self) -> None:
        if self.mode not in ("enforce", "monitor", "off"):
            raise ValueError(f"UPLOAD_TICKETS mode {self.mode!r}")
        if self.mode != "off" and not self.key:
            raise ValueError(f"UPLOAD_TICKETS={self.mode} needs the key")


class RetryEvent(Exception):
    """The event could not be handled now (a dependency is unavailable, or the object
    kept changing): the trigger raises it so that the platform delivers the event again."""


@dataclass(frozen=True)
class ObjectEvent:
    """The parts of a finalized event that this code relies on."""

    event_id: str | None
    time: datetime | None
    bucket: str
    name: str
    generation: int
    # The object's custom metadata and timeCreated, as the event gives them (the upload ticket's).
    metadata: Mapping[str, Any] | None = None
    time_created: datetime | None = None

    @property
    def upload_id(self) -> str:
        return upload_id(self.bucket, self.name, self.generation)


@dataclass(frozen=True)
class UploadSession:
    session_id: uuid.UUID
    visitor_number: int | None
    experiment_id: str | None


@dataclass(frozen=True)
class StoredObject:
    """The object generation as Storage holds it (after tagging)."""

    content_type: str | None
    size: int
    time_created: datetime


@dataclass(frozen=True)
class Outcome:
    """What one delivery did: `recorded` (the first time), `duplicate` (already recorded:
    nothing changed), `erased` (an object of an erased session: deleted), `refused` (no valid
    upload ticket, or an unknown session, with UPLOAD_TICKETS=enforce: deleted) or `ignored`
    (acknowledged, nothing written)."""

    status: str
    reason: str
    upload_id: str | None = None
    visitor_number: int | None = None
    warn: bool = False  # worth a warning: malformed, unknown session, deleted, ... (not Unrelated)


def upload_id(bucket: str, name: str, generation: int) -> str:
    """The Firestore id of one object generation: the same for every delivery of its event.

    gs://BUCKET/NAME#GENERATION is unambiguous (the generation is the digits after
    the last '#'); its SHA-256 fits a document id whatever characters NAME has.
    """
    return hashlib.sha256(f"gs://{bucket}/{name}#{generation}".encode()).hexdigest()


def record_upload(
    attributes: Mapping[str, Any],
    data: Any,
    *,
    engine: Engine,
    storage_client,
    firestore_client,
    tickets: TicketCheck,
    max_age_seconds: int = 86400,
    expected_bucket: str | None = None,
    now: datetime | None = None,
) -> Outcome:
    """Handle one `finalized` CloudEvent; raises RetryEvent when a dependency is unavailable
    so that it is redelivered (an unnumbered session is handled too: docs/design/uploads.md)."""
    try:
        return _record_upload(
            attributes,
            data,
            engine,
            storage_client,
            firestore_client,
            tickets,
            max_age_seconds,
            expected_bucket,
            now or datetime.now(UTC),
        )
    except DependencyUnavailable as error:
        raise RetryEvent(error.message) from error


def _record_upload(
    attributes, data, engine, storage_client, firestore_client, tickets, max_age_seconds, expected_bucket, now
) -> Outcome:
    try:
        event = parse_event(attributes, data, expected_bucket)
        _check_age(event, max_age_seconds, now)
        check_ticket(event, tickets)
        with locked_session(engine, session_id_of(event.name)) as (conn, session):
            stored = tag_object(storage_client, event, session)
            if session.visitor_number is None:
                log.warning(
                    "session %s has no visitor number yet; recording the upload without one",
                    session.session_id,
                    extra={"fields": {"sessionId": str(session.session_id), "uploadId": event.upload_id}},
                )
            created = record_in_postgres(conn, event, session, stored)
            if created:
                # Before PostgreSQL commits: a failure here rolls the row back and the redelivery
                # writes both again, so a row is never without its Firestore documents.
                record_in_firestore(firestore_client, event, session, stored, latest_upload(conn, session))
    except Erased as erased:
        deleted = _delete_generation(storage_client, event)
        return Outcome(
            "erased", f"{erased.reason}; {'deleted the object' if deleted else 'the object was gone'}", event.upload_id
        )
    except (Refused, UnknownSession) as refused:
        if isinstance(refused, UnknownSession) and tickets.mode != "enforce":
            return Outcome("ignored", refused.reason, warn=True)
        if isinstance(refused, Refused) and already_recorded(engine, event):
            # A redelivery (or make dev's bridge after a restart) once the key changed: its ticket
            # verified when it was recorded, and the recorded upload stays.
            return Outcome("duplicate", f"{refused.reason}, but it was recorded before; left as it is", event.upload_id)
        deleted = _delete_generation(storage_client, event)
        return Outcome(
            "refused",
            f"{refused.reason}; {'deleted the object' if deleted else 'the object was gone'}",
            event.upload_id,
            warn=True,
        )
    except Ignored as ignored:
        return Outcome("ignored", ignored.reason, warn=not isinstance(ignored, Unrelated))
    return Outcome(
        "recorded" if created else "duplicate",
        "first delivery" if created else "already recorded; nothing changed",
        event.upload_id,
        session.visitor_number,
    )


# --- The event --------------------------------------------------------------


def parse_event(attributes: Mapping[str, Any], data: Any, expected_bucket: str | None = None) -> ObjectEvent:
    """The event's object; Ignored if it is not a usable `finalized` event."""
    event_type = attributes.get("type")
    if event_type != FINALIZED:
        raise Ignored(f"event type {event_type!r} is not {FINALIZED}")
    if not isinstance(data, Mapping):
        raise Ignored(f"event data is not a JSON object (got {type(data).__name__})")
    bucket, name, generation = data.get("bucket"), data.get("name"), data.get("generation")
    if not isinstance(bucket, str) or not bucket:
        raise Ignored("event data has no bucket")
    if not isinstance(name, str) or not name:
        raise Ignored("event data has no object name")
    if isinstance(generation, bool) or not isinstance(generation, (int, str)) or not str(generation).isdigit():
        raise Ignored(f"event data has no valid generation (got {generation!r})")
    if int(generation) <= 0:
        raise Ignored(f"event data has no valid generation (got {generation!r})")
    if expected_bucket and bucket != expected_bucket:
        raise Ignored(f"bucket {bucket!r} is not STORAGE_BUCKET {expected_bucket!r}")
    time = None
    if attributes.get("time"):
        time = parse_time(str(attributes["time"]))
        if time is None:
            raise Ignored(f"event time {attributes['time']!r} is not an RFC 3339 time in range")
    metadata = data.get("metadata")
    created = data.get("timeCreated")
    return ObjectEvent(
        attributes.get("id"),
        time,
        bucket,
        name,
        int(generation),
        metadata if isinstance(metadata, Mapping) else None,
        parse_time(created) if isinstance(created, str) else None,
    )


def parse_time(value: str) -> datetime | None:
    """An RFC 3339 time (any number of fraction digits), None if it is not one or is out of range
    (before year 1 or after 9999 in UTC, as 0001-01-01T00:00:00+14:00 is)."""
    match = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", value.strip(), re.I)
    if not match:
        return None
    whole, fraction, zone = match.groups()
    try:
        moment = datetime.fromisoformat(
            f"{whole}.{(fraction or '0')[:6].ljust(6, '0')}{'+00:00' if zone.upper() == 'Z' else zone}"
        )
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def _check_age(event: ObjectEvent, max_age_seconds: int, now: datetime) -> None:
    # Without a time attribute the age cannot be judged; the event is handled.
    if event.time is not None:
        age = (now - event.time).total_seconds()
        if age > max_age_seconds:
            raise Ignored(f"event is {age:.0f} s old, older than UPLOAD_EVENT_MAX_AGE_SECONDS={max_age_seconds}")


def check_ticket(event: ObjectEvent, tickets: TicketCheck) -> None:
    """Refused when an object under sessions/ has no valid upload ticket and UPLOAD_TICKETS is
    enforce; a warning with monitor; nothing with off (docs/design/upload-tickets.md)."""
    if tickets.mode == "off" or not event.name.startswith(SESSIONS_PREFIX):
        return
    assert tickets.key is not None  # TicketCheck.__post_init__
    problem = upload_tickets.problem(tickets.key, event.name, event.metadata, event.time_created)
    if problem is None:
        return
    reason = f"gs://{event.bucket}/{event.name} has no valid upload ticket: {problem}"
    if tickets.mode == "enforce":
        raise Refused(reason)
    log.warning(
        "%s; tagged anyway (UPLOAD_TICKETS=monitor)",
        reason,
        extra={"fields": {"uploadId": event.upload_id, "uploadTickets": "monitor"}},
    )


def session_id_of(name: str) -> uuid.UUID:
    """The session an object belongs to by its path, sessions/{uuid}/... with the uuid in lower case;
    Unrelated otherwise."""
    match = _SESSION_OBJECT.fullmatch(name)
    if not match:
        raise Unrelated(f"object {name!r} is not under sessions/{{sessionId}}/")
    return uuid.UUID(match["session_id"])


# --- PostgreSQL -------------------------------------------------------------


@contextmanager
def locked_session(engine: Engine, session_id: uuid.UUID) -> Iterator[tuple[Connection, UploadSession]]:
    """The session, held FOR SHARE in a transaction while the block records its upload; the
    transaction commits when the block ends.

    An erasure of the session waits for the block to end (and its Firestore part
    then deletes what the block wrote). UnknownSession if there is no such session;
    Erased if it was erased (its tombstone). DependencyUnavailable if the
    database is down.
    """
    with transaction(engine) as conn:
        row = conn.execute(statement("uploads/session"), {"session_id": str(session_id)}).first()
        if row is None:
            if conn.execute(statement("uploads/erased_session"), {"session_id": str(session_id)}).first():
                raise Erased(f"session {session_id} was erased")
            raise UnknownSession(f"no session {session_id}")
        yield conn, UploadSession(row.id, row.visitor_number, row.experiment_id)


def record_in_postgres(conn: Connection, event: ObjectEvent, session: UploadSession, stored: StoredObject) -> bool:
    """The upload's row in `uploads`, once per uploadId: True when this delivery inserted it."""
    row = conn.execute(
        statement("uploads/record"),
        {
            "id": event.upload_id,
            "session_id": str(session.session_id),
            "visitor_number": session.visitor_number,
            "bucket": event.bucket,
            "name": event.name,
            "generation": event.generation,
            "content_type": stored.content_type,
            "size": stored.size,
            "uploaded_at": stored.time_created,
        },
    ).first()
    return row is not None


def latest_upload(conn: Connection, session: UploadSession) -> datetime | None:
    """The visitor's latest upload time, read under a lock per visitor number, so that the
    Firestore writes of one visitor's uploads happen in the order their rows commit (each
    writes what all the committed rows say, and the last writer sees them all)."""
    if session.visitor_number is None:
        return None
    conn.execute(statement("uploads/lock_visitor"), {"visitor_number": session.visitor_number})
    return conn.execute(statement("uploads/latest"), {"visitor_number": session.visitor_number}).scalar_one()


def already_recorded(engine: Engine, event: ObjectEvent) -> bool:
    """Whether the upload has its row: the object was let in by an earlier delivery."""
    with transaction(engine) as conn:
        return conn.execute(statement("uploads/recorded"), {"id": event.upload_id}).first() is not None


# --- Storage ----------------------------------------------------------------


def object_metadata(session: UploadSession, time_created: datetime) -> dict[str, str | None]:
    """The trigger's metadata for an object of this session (None: the key must be absent)."""
    return {
        "visitorNumber": None if session.visitor_number is None else str(session.visitor_number),
        "sessionId": str(session.session_id),
        "experimentId": session.experiment_id,
        "uploadedAt": rfc3339(time_created),
    }


def tag_object(storage_client, event: ObjectEvent, session: UploadSession) -> StoredObject:
    """Write the session's metadata on the event's generation, keeping the object's other keys;
    a replaced object is left alone (docs/design/uploads.md)."""

    bucket = storage_client.bucket(event.bucket)
    for _ in range(_TAG_ATTEMPTS):
        blob = storage_call(
            "read", bucket.get_blob, event.name, retry=storage_retry(), timeout=DEPENDENCY_DEADLINE_SECONDS
        )
        if blob is None:
            raise Ignored(f"object gs://{event.bucket}/{event.name} no longer exists")
        if blob.generation != event.generation:
            raise Ignored(
                f"generation {event.generation} of gs://{event.bucket}/{event.name} was replaced "
                f"by generation {blob.generation}; the new one has its own event"
            )
        wanted = object_metadata(session, blob.time_created)
        current = dict(blob.metadata or {})
        if all(current.get(key) == value for key, value in wanted.items()):
            return _stored(blob)
        if write_tags(blob, wanted, event.generation):
            return _stored(blob)
        # replaced, deleted, or re-tagged meanwhile: read again
    raise RetryEvent(f"the metadata of gs://{event.bucket}/{event.name} kept changing; try again later")


def write_tags(blob, wanted: Mapping[str, str | None], generation: int) -> bool:
    """Write `wanted` (None: remove the key) on this generation as read, keeping the object's other
    keys; False if it was replaced, deleted or changed since it was read (Cloud Storage's
    preconditions), for the caller to read again."""
    from google.api_core import exceptions

    current = dict(blob.metadata or {})
    # Cloud Storage merges custom metadata keys on PATCH (None deletes one);
    # sending the whole map keeps the other keys on servers that replace it.
    blob.metadata = {**current, **{key: value for key, value in wanted.items() if value is not None or key in current}}
    try:
        storage_call(
            "tag",
            blob.patch,
            if_generation_match=generation,
            if_metageneration_match=blob.metageneration,
            retry=storage_retry(),
            timeout=DEPENDENCY_DEADLINE_SECONDS,
        )
    except (exceptions.PreconditionFailed, exceptions.NotFound):
        return False
    return True


def _delete_generation(storage_client, event: ObjectEvent) -> bool:
    """Delete the event's generation of its object (one of an erased session)."""
    return delete_object(storage_client, event.bucket, event.name, event.generation)


def _stored(blob) -> StoredObject:
    return StoredObject(blob.content_type, int(blob.size or 0), blob.time_created)


# --- Firestore --------------------------------------------------------------


def record_in_firestore(
    firestore_client, event: ObjectEvent, session: UploadSession, stored: StoredObject, last_upload_at: datetime | None
) -> bool:
    """Write `uploads/{uploadId}` and count it in `visitors/{n}`, in one batch that reads
    nothing: True the first time. The upload is written with create(), so the batch fails
    as a whole when it exists, and the count is raised exactly once whatever the retries.
    `lastUploadAt` is PostgreSQL's (latest_upload), so a late redelivery cannot move it back."""
    from google.api_core import exceptions
    from google.cloud import firestore

    number = session.visitor_number
    batch = firestore_client.batch()
    batch.create(
        firestore_client.collection("uploads").document(event.upload_id),
        {
            "bucket": event.bucket,
            "name": event.name,
            # A string: generations exceed 2^53, which JavaScript clients would round.
            "generation": str(event.generation),
            "contentType": stored.content_type,
            "size": stored.size,
            "sessionId": str(session.session_id),
            "visitorNumber": number,
            "experimentId": session.experiment_id,
            "uploadedAt": stored.time_created,
            "recordedAt": firestore.SERVER_TIMESTAMP,
        },
    )
    if number is not None:
        batch.set(
            firestore_client.collection("visitors").document(str(number)),
            {"visitorNumber": number, "uploadCount": firestore.Increment(1), "lastUploadAt": last_upload_at},
            merge=True,
        )
    try:
        batch.commit(retry=firestore_retry(), timeout=DEPENDENCY_DEADLINE_SECONDS)
    except exceptions.AlreadyExists:
        return False  # an earlier delivery wrote both (and its PostgreSQL part did not commit)
    except (exceptions.GoogleAPICallError, exceptions.RetryError) as error:
        raise failures.unavailable(
            "Firestore", error, "Firestore is unavailable; the event will be retried."
        ) from error
    return True
