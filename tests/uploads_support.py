"""Helpers for the upload tests: objects uploaded to the Storage emulator, their
finalized CloudEvents sent over HTTP (devtools.clients.StorageEvents, shared with
bench/), and reads of what the trigger stored."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import requests

from devtools.clients import StorageEvents
from tests.support import Api, new_guest_key


@dataclass
class UploadsWorld:
    """Sessions over HTTP, the bucket, Firestore and the trigger, for one test."""

    api: Api
    db: Any
    firestore: Any
    bucket: Any
    events: StorageEvents

    def new_session(self, guest: str | None = None, experiment_id: str | None = "study-1") -> dict:
        body = {"experimentId": experiment_id} if experiment_id else {}
        response = self.api.post("create_session", body, guest=guest or new_guest_key())
        assert response.status_code == 201, response.text
        return response.json()

    def upload(
        self,
        session_id: str,
        file_name: str = "photo.png",
        data: bytes = b"\x89PNG...",
        content_type: str = "image/png",
        metadata: dict | None = None,
        name: str | None = None,
    ) -> dict:
        """A real object in the Storage emulator; its resource (StorageObjectData)."""
        blob = self.bucket.blob(name or f"sessions/{session_id}/{file_name}")
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

    def visitors(self) -> dict[str, dict]:
        return {doc.id: doc.to_dict() for doc in self.firestore.collection("visitors").stream()}


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
