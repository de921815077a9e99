"""Domain errors: one root, narrow subclasses, each with the documented code, status
and any headers of its own; and DependencyUnavailable, which is not a client's error.

They are turned into HTTP answers in exactly one place, shared.web.http.
"""

from __future__ import annotations

from typing import Any

from shared.core import config


class ServiceError(Exception):
    """Root of every error a client may see."""

    code = "internal"
    status = 500

    def __init__(self, message: str, **fields: Any):
        super().__init__(message)
        self.message = message
        self._fields = fields

    def headers(self) -> dict[str, str]:
        """Headers the answer carries besides the JSON body."""
        return {}

    def fields(self) -> dict[str, object]:
        """Fields the error object carries besides code and message, where SPEC §4 names them
        (`index` of a refused batch item: InvalidArgument(message, index=3))."""
        return dict(self._fields)


class InvalidArgument(ServiceError):
    code, status = "invalid_argument", 400


class InvalidJson(ServiceError):
    code, status = "invalid_json", 400


class Unauthenticated(ServiceError):
    code, status = "unauthenticated", 401


class PermissionDenied(ServiceError):
    code, status = "permission_denied", 403


class GuestClaimed(ServiceError):
    code, status = "guest_claimed", 403


# GuestClaimed's message for an anonymous Firebase account whose data a signed-in account claimed
# (docs/api.md), said alike by every function a visitor calls.
ANONYMOUS_CLAIMED = "This anonymous account's data now belongs to a signed-in account; sign in to continue."


class NotFound(ServiceError):
    code, status = "not_found", 404


class MethodNotAllowed(ServiceError):
    code, status = "method_not_allowed", 405

    def __init__(self, message: str, allow: tuple[str, ...]):
        super().__init__(message)
        self.allow = allow

    def headers(self) -> dict[str, str]:
        return {"Allow": ", ".join(self.allow)}


class Conflict(ServiceError):
    code, status = "conflict", 409


class Incomplete(ServiceError):
    """complete_session before the server holds the responses the client recorded (SPEC §14.4)."""

    code, status = "incomplete", 409

    def __init__(self, message: str, stored: int):
        super().__init__(message, stored=stored)
        self.stored = stored


class StudyClosed(ServiceError):
    """A new session of an experiment that is not active (SPEC §14.1)."""

    code, status = "study_closed", 409


class StudyFull(ServiceError):
    """A new participant of an experiment whose cap or every quota is reached (SPEC §14.1)."""

    code, status = "study_full", 409


class AlreadyParticipated(ServiceError):
    """A participant who completed a session of the experiment before (SPEC §14.3)."""

    code, status = "already_participated", 409


class PayloadTooLarge(ServiceError):
    code, status = "payload_too_large", 413


class UnsupportedMediaType(ServiceError):
    code, status = "unsupported_media_type", 415


class ResourceExhausted(ServiceError):
    """Too many tries (wrong claim codes, docs/api.md): the client may try again after Retry-After seconds."""

    code, status = "resource_exhausted", 429

    def __init__(self, message: str, retry_after_seconds: int):
        super().__init__(message)
        self.retry_after_seconds = max(1, int(retry_after_seconds))

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_seconds)}


class Unavailable(ServiceError):
    """A dependency (database, Auth) is down or too slow; the client should retry."""

    code, status = "unavailable", 503

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(config.retry_after_seconds())}


class DependencyUnavailable(Exception):
    """A dependency (PostgreSQL, Firebase Auth, Firestore, Cloud Storage) is down or
    too slow: the same work may succeed later. Raised by shared.core.failures only.

    Not a ServiceError, because what it means depends on the caller: an HTTP
    function answers Unavailable (503 with Retry-After) with `message`; the
    storage trigger has its event delivered again (shared.visitors.uploads.RetryEvent).
    """

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message
