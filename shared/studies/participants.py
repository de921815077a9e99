"""Who a study's participant is (SPEC §14, Words): a platform participant, or a session's owner,
and its keyed hash in the participation ledger (sql/012_studies.sql), which outlives withdrawal."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from dataclasses import dataclass

from shared.core import config


@dataclass(frozen=True)
class Participant:
    """A platform participant (platform, participant_id), or an owner: a user id or a guest id."""

    platform: str = "none"
    participant_id: str | None = None
    user_id: str | None = None
    guest_id: uuid.UUID | None = None

    def identity(self) -> str:
        if self.participant_id is not None:
            return f"{self.platform}\x00{self.participant_id}"
        if self.user_id is not None:
            return f"user\x00{self.user_id}"
        return f"guest\x00{self.guest_id}"


def participant_hash(experiment_id: str, participant: Participant, key: bytes | None = None) -> bytes:
    """HMAC-SHA256 of (experiment, participant) with PARTICIPANT_KEY: the ledger's key, nothing readable."""
    message = f"{experiment_id}\x00{participant.identity()}".encode()
    return hmac.new(key or config.participant_key(), message, hashlib.sha256).digest()
