"""Helpers for the upload tests: objects uploaded to the Storage emulator with their upload
tickets, their finalized CloudEvents sent over HTTP (devtools.clients.StorageEvents, shared
with bench/), and reads of what the trigger stored."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
import sqlalchemy

from devtools.clients import StorageEvents
from shared.visitors import upload_tickets
from tests.support import Api, new_guest_key

# upload(ticket=SIGNED): a ticket signed here with the stack's key, as create_upload_ticket signs them.
SIGNED = "signed"


@dataclass
class UploadsWorld:
    """Sessions over HTTP, the bucket, Firestore and the trigger, for one test."""

    api: Api
    db: Any
    firestore: Any
    bucket: Any
    events: StorageEvents
    # UPLOAD_TICKET_KEY of the functions the events go to (Stack.upload_ticket_key).
    ticket_key: str | None = None
    # The guest key of each session new_session made: its tickets come from create_upload_ticket.
    owners: dict[str, str] = field(default_factory=dict)

    def new_session(
        self, guest: str | None = None, experiment_id: str | None = "study-1", session_id: str | None = None
    ) -> dict:
        body: dict[str, str] = {"experimentId": experiment_id} if experiment_id else {}
        if session_id:
            body["sessionId"] = session_id
        guest = guest or new_guest_key()
        response = self.api.post("create_session", body, guest=guest)
        assert response.status_code == 201, response.text
        self.owners[response.json()["sessionId"]] = guest
        return response.json()

    def ticket(self, session_id: str, file_name: str) -> str:
        """A ticket for sessions/{session_id}/{file_name}: create_upload_ticket's, asked by the
        session's guest when new_session made it; otherwise signed with the stack's key."""
        guest = self.owners.get(session_id)
        if guest is None:
            return self.signed_ticket(session_id, file_name)
        response = self.api.post("create_upload_ticket", {"sessionId": session_id, "name": file_name}, guest=guest)
        assert response.status_code == 201, response.text
        return response.json()["ticket"]

    def signed_ticket(self, session_id: str, file_name: str, expires_at: datetime | None = None) -> str:
        """A ticket signed with the stack's key by the product's own function (by default for an hour)."""
        assert self.ticket_key, "UploadsWorld(ticket_key=...) signs tickets"
        expires_at = expires_at or datetime.now(UTC) + timedelta(hours=1)
        return upload_tickets.sign(self.ticket_key.encode(), session_id, file_name, expires_at)

    def upload(
        self,
        session_id: str,
        file_name: str = "photo.png",
        data: bytes = b"\x89PNG...",
        content_type: str = "image/png",
        metadata: dict | None = None,
        name: str | None = None,
        ticket: str | bool = True,
    ) -> dict:
        """A real object in the Storage emulator; its resource (StorageObjectData). At
        sessions/{session_id}/{file_name} it carries an upload ticket (self.ticket) unless
        `ticket` is False; a string is the ticket itself; SIGNED one signed with the stack's key."""
        blob = self.bucket.blob(name or f"sessions/{session_id}/{file_name}")
        if ticket == SIGNED:
            ticket = self.signed_ticket(session_id, file_name)
        elif ticket is True:  # a name given whole gets no ticket but one given as a string
            ticket = self.ticket(session_id, file_name) if name is None else False
        if isinstance(ticket, str):
            metadata = {**(metadata or {}), upload_tickets.METADATA_KEY: ticket}
        if metadata:
            blob.metadata = metadata
        blob.upload_from_string(data, content_type=content_type)
        return dict(blob._properties)

    def deliver(self, item: dict, **kwargs) -> requests.Response:
        return self.events.deliver(item, **kwargs)

    def stored(self, name: str) -> dict | None:
        """The object's resource as Storage holds it now (None if it does not exist)."""
        blob = self.bucket.get_blob(name)
        return None if blob is None else dict(blob._properties)

    def uploads(self) -> dict[str, dict]:
        return {doc.id: doc.to_dict() for doc in self.firestore.collection("uploads").stream()}

    def rows(self) -> dict[str, dict]:
        """The `uploads` rows in PostgreSQL, by uploadId (SPEC §16)."""
        with self.db.connect() as conn:
            found = conn.execute(sqlalchemy.text("SELECT * FROM uploads ORDER BY id")).mappings().all()
        return {row["id"]: dict(row) for row in found}

    def visitors(self) -> dict[str, dict]:
        return {doc.id: doc.to_dict() for doc in self.firestore.collection("visitors").stream()}


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
