"""The instance's Cloud Storage and Firestore clients, made on first use, and the
retries and deadlines every call to them takes (uploads, erasure and maintenance share them)."""

from __future__ import annotations

from collections.abc import Callable

from shared.core import config, failures
from shared.core.instance import InstanceCache

# A call should fail within seconds and let the caller (the platform, for an event) retry,
# rather than hold the instance while a dependency is down.
DEPENDENCY_DEADLINE_SECONDS = 5.0


def _make_storage_client():
    from google.cloud import storage  # type: ignore[attr-defined]

    config.refuse_dev_settings_when_deployed()  # STORAGE_EMULATOR_HOST is for dev and tests only
    return storage.Client(project=config.project_id())


def _make_firestore_client():
    from google.cloud import firestore

    config.refuse_dev_settings_when_deployed()  # FIRESTORE_EMULATOR_HOST is for dev and tests only
    return firestore.Client(project=config.project_id())


# STORAGE_EMULATOR_HOST and FIRESTORE_EMULATOR_HOST are honoured by the libraries.
_storage = InstanceCache(_make_storage_client)
_firestore = InstanceCache(_make_firestore_client, close=lambda client: client.close())


def storage_client():
    """The instance's Cloud Storage client."""
    return _storage.get()


def firestore_client():
    """The instance's Firestore client."""
    return _firestore.get()


def firestore_retry():
    """Firestore's transient errors retried for DEPENDENCY_DEADLINE_SECONDS at most."""
    from google.api_core import exceptions
    from google.api_core import retry as retries

    return retries.Retry(
        initial=0.1,
        maximum=1.0,
        multiplier=2.0,
        timeout=DEPENDENCY_DEADLINE_SECONDS,
        predicate=retries.if_exception_type(
            exceptions.ServiceUnavailable, exceptions.ResourceExhausted, exceptions.InternalServerError
        ),
    )


def reset_clients() -> None:
    """Forget the cached clients (tests that change the environment)."""
    _storage.reset()
    _firestore.reset()


def storage_retry():
    from google.cloud.storage.retry import DEFAULT_RETRY

    return DEFAULT_RETRY.with_timeout(DEPENDENCY_DEADLINE_SECONDS)


def storage_call(what: str, call: Callable, *args, **kwargs):
    """A Storage call; transport failures and server errors become DependencyUnavailable."""
    with failures.unavailable_when(
        f"Cloud Storage ({what})", _storage_transient, "Cloud Storage is unavailable; the event will be retried."
    ):
        return call(*args, **kwargs)


def _storage_transient(error: BaseException) -> bool:
    import requests
    from google.api_core import exceptions

    return isinstance(
        error,
        (
            exceptions.RetryError,
            exceptions.ServerError,
            exceptions.TooManyRequests,
            requests.exceptions.RequestException,
        ),
    )


def delete_object(client, bucket: str, name: str, generation: int) -> bool:
    """Delete one generation of an object; False if it was gone already."""
    from google.api_core import exceptions

    blob = client.bucket(bucket).blob(name, generation=generation)
    try:
        storage_call("delete", blob.delete, retry=storage_retry(), timeout=DEPENDENCY_DEADLINE_SECONDS)
    except exceptions.NotFound:
        return False
    return True
