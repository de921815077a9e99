"""Upload tickets: the session owner's signed permission to upload one name into a session
(create_upload_ticket), checked by the storage trigger (docs/design/upload-tickets.md)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from shared.core.db import single_statement, statement
from shared.core.encodings import rfc3339
from shared.core.errors import ANONYMOUS_CLAIMED, GuestClaimed, NotFound, PermissionDenied
from shared.core.logs import get_logger
from shared.web.auth import Caller, Guest

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

log = get_logger("upload_tickets")

# The object's custom metadata key that carries the ticket (storage.rules require it on create).
METADATA_KEY = "uploadTicket"
VERSION = "v1"
# v1.<expiry, Unix seconds>.<HMAC-SHA256, base64url without padding: 43 characters>. storage.rules
# match the same shape.
TICKET = re.compile(r"v1\.(?P<expires>[0-9]{1,12})\.(?P<mac>[A-Za-z0-9_-]{43})")


def object_name(session_id: uuid.UUID | str, name: str) -> str:
    """The object a ticket is for: sessions/{sessionId}/{name}, the session id in lower case."""
    return f"sessions/{str(session_id).lower()}/{name}"


def _mac(key: bytes, session_id: str, name: str, expires: int) -> str:
    # What is signed: the version, the session (lower case), the name and the expiry, each on its
    # own line; a name has no control character, so no other session, name or expiry signs the same.
    message = f"upload-ticket:{VERSION}\n{session_id}\n{name}\n{expires}".encode()
    digest = hmac.new(key, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def sign(key: bytes, session_id: uuid.UUID | str, name: str, expires_at: datetime) -> str:
    """A ticket for uploading `name` into the session until `expires_at` (whole seconds)."""
    expires = int(expires_at.timestamp())
    return f"{VERSION}.{expires}.{_mac(key, str(session_id).lower(), name, expires)}"


def problem(key: bytes, object_path: str, metadata: Any, time_created: datetime | None) -> str | None:
    """Why the object's uploadTicket does not let it in, or None when the ticket was issued for
    this object's session and name and the object was created before the ticket expired."""
    ticket = metadata.get(METADATA_KEY) if isinstance(metadata, Mapping) else None
    if ticket is None:
        return f"no {METADATA_KEY} in its metadata"
    match = TICKET.fullmatch(ticket) if isinstance(ticket, str) else None
    if match is None:
        return f"its {METADATA_KEY} is not a ticket"
    parts = object_path.split("/")
    if len(parts) != 3 or parts[0] != "sessions":
        return f"no ticket is issued for {object_path!r}: not sessions/{{sessionId}}/{{name}}"
    expires = int(match["expires"])
    if not hmac.compare_digest(match["mac"], _mac(key, parts[1], parts[2], expires)):
        return f"its {METADATA_KEY} was not issued for this session and name"
    if time_created is None:
        return "the event gives no timeCreated to check the ticket's expiry against"
    if time_created.timestamp() > expires:
        expired = datetime.fromtimestamp(expires, UTC)
        return f"its {METADATA_KEY} expired at {rfc3339(expired)}, before the object was created"
    return None


# --- create_upload_ticket -----------------------------------------------------------


@dataclass(frozen=True)
class UploadTicket:
    ticket: str
    expires_at: datetime
    path: str

    def to_json(self) -> dict[str, str]:
        return {"ticket": self.ticket, "expiresAt": rfc3339(self.expires_at), "path": self.path}


def create_upload_ticket(
    engine: Engine,
    caller: Caller,
    session_id: uuid.UUID,
    name: str,
    *,
    key: bytes,
    ttl_seconds: int,
    now: datetime | None = None,
) -> UploadTicket:
    """A ticket for the caller's own session. NotFound for an unknown (or erased) session,
    PermissionDenied for another visitor's, GuestClaimed for an anonymous account that a
    signed-in one has claimed. Nothing is stored."""
    params: dict[str, Any] = {"session_id": str(session_id)}
    if isinstance(caller, Guest):
        query, params["key_hash"] = "uploads/ticket_owner_guest", caller.key_hash
    else:
        query, params["user_id"] = "uploads/ticket_owner_user", caller.uid
    with single_statement(engine) as conn:
        row = conn.first(statement(query), params)
    if row is None or row.outcome == "missing":
        raise NotFound("No session with this sessionId; create one with create_session first.")
    if row.outcome == "claimed":
        raise GuestClaimed(ANONYMOUS_CLAIMED)
    if row.outcome != "owned":
        raise PermissionDenied("This session belongs to another visitor.")
    # Whole seconds: the ticket carries its expiry in seconds, and expiresAt says that same moment.
    expires_at = (now or datetime.now(UTC)).replace(microsecond=0) + timedelta(seconds=ttl_seconds)
    ticket = UploadTicket(sign(key, session_id, name, expires_at), expires_at, object_name(session_id, name))
    log.info(
        "issued an upload ticket",
        extra={"fields": {"sessionId": str(session_id), "expiresAt": rfc3339(expires_at)}},
    )
    return ticket
