"""Helpers for the upload tests: finalized CloudEvents sent over HTTP as
Eventarc sends them (binary content mode), objects uploaded to the Storage
emulator, and reads of what the trigger stored."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import requests

from tests.support import Api, new_guest_key

FINALIZED = "google.cloud.storage.object.v1.finalized"


class StorageEvents:
    """on_upload_finalized over HTTP, sent CloudEvents in binary content mode."""

    def __init__(self, url: str):
        self.url = url

    def headers(self, item: dict, *, event_id: str | None = None, time: str | None = None,
                event_type: str = FINALIZED) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            "ce-specversion": "1.0",
            # A redelivery keeps its event id, as with Eventarc.
            "ce-id": event_id or hashlib.sha256(f"{item.get('name')}#{item.get('generation')}".encode()).hexdigest()[:16],
            "ce-source": f"//storage.googleapis.com/projects/_/buckets/{item.get('bucket')}",
            "ce-type": event_type,
            "ce-subject": f"objects/{item.get('name')}",
        }
        time = time or item.get("timeCreated")
        if time:
            headers["ce-time"] = time
        return headers

    def deliver(self, item: dict, *, body: bytes | None = None, content_type: str | None = None,
                **attributes) -> requests.Response:
        """POST the finalized event of this object (StorageObjectData `item`)."""
        headers = self.headers(item, **attributes)
        if content_type:
            headers["Content-Type"] = content_type
        data = json.dumps(item).encode() if body is None else body
        return requests.post(self.url, data=data, headers=headers, timeout=60)


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

    def upload(self, session_id: str, file_name: str = "photo.png", data: bytes = b"\x89PNG...",
               content_type: str = "image/png", metadata: dict | None = None, name: str | None = None) -> dict:
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
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(timezone.utc)
