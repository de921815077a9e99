"""Real servers for the tests: one local stack (PostgreSQL, Auth emulator, all
functions under gunicorn) per test session, on free ports; each test starts
from empty tables and a fresh visitor_number_seq."""

from __future__ import annotations

import contextlib
import logging
import os

import pytest
import sqlalchemy
from sqlalchemy import text

from devtools.clients import AuthEmulatorClient, StorageEvents
from devtools.stack import BUCKET, PROJECT, Stack
from shared.core.db import plain_engine
from tests.support import Api
from tests.uploads_support import UploadsWorld

ALLOWED_ORIGIN = "https://study.example.org"

_ENV_NAMES = (
    "DATABASE_URL",
    "INSTANCE_CONNECTION_NAME",
    "DB_USER",
    "DB_PASS",
    "DB_NAME",
    "DB_IAM_AUTH",
    "DB_IP_TYPE",
    "GOOGLE_CLOUD_PROJECT",
    "ALLOWED_ORIGINS",
    "FIREBASE_AUTH_EMULATOR_HOST",
    "FIRESTORE_EMULATOR_HOST",
    "STORAGE_EMULATOR_HOST",
    "STORAGE_BUCKET",
    "APP_CHECK",
    "APP_CHECK_JWKS_URL",
    "GUEST_LIMIT_PER_HOUR",
    "GUEST_LIMIT_KEY",
    "SESSION_LIMIT_PER_HOUR",
    "UPLOAD_TICKETS",
    "UPLOAD_TICKET_KEY",
    "UPLOAD_TICKET_TTL_SECONDS",
    "PARTICIPANT_KEY",
    "GUEST_RETENTION_DAYS",
    "MAINTENANCE_INVOKER",
    "MAINTENANCE_AUDIENCE",
    "MAINTENANCE_CERTS_URL",
    "FIREBASE_STORAGE_EMULATOR_HOST",
    # Cloud Run's: with one of them set, the functions refuse the emulators (config.deployed).
    "K_SERVICE",
    "K_REVISION",
    "K_CONFIGURATION",
    "X_FORWARDED_FOR_TRUSTED",
)

# The guest-creation limit of the session's stack (SPEC §12): far above what any test makes
# from 127.0.0.1, so that only tests/e2e/test_guest_limit.py, with servers of its own, meets it.
TEST_GUEST_LIMIT_PER_HOUR = "1000000"


@pytest.fixture(autouse=True)
def isolate_environment(monkeypatch):
    """No test sees (or leaks) settings of another or of the developer's shell."""
    for name in _ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    yield
    from shared.core import db
    from shared.web import auth

    db.reset_engine()
    auth.reset_firebase_app()


@pytest.fixture
def lines():
    """The product's log lines (its loggers do not propagate to the root logger)."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("visitors")
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    stack = Stack.with_free_ports(
        tmp_path_factory.mktemp("stack"),
        fast_postgres=True,
        allowed_origins=ALLOWED_ORIGIN,
        guest_limit_per_hour=TEST_GUEST_LIMIT_PER_HOUR,
    )
    stack.start()
    yield stack
    stack.stop()
    if stack.postgres:
        stack.postgres.destroy()


@pytest.fixture(scope="session")
def engine(stack):
    engine = plain_engine(stack.database_url, pool_size=4)
    yield engine
    engine.dispose()


def reset_data(engine: sqlalchemy.Engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(
                "TRUNCATE users, guests, sessions, responses, visitor_merges, erasures, erased_sessions, "
                "claim_codes, claim_code_attempts, guest_limits, researcher_actions, "
                "experiments, completion_deliveries, participation_ledger CASCADE"
            )
        )
        conn.execute(text("ALTER SEQUENCE visitor_number_seq NO MAXVALUE RESTART WITH 1"))


@pytest.fixture
def db(engine):
    """The stack's database, emptied for this test."""
    reset_data(engine)
    return engine


@pytest.fixture
def api(stack, db) -> Api:
    return Api(stack.env()["FUNCTIONS_URL"])


@pytest.fixture(scope="session")
def auth_emulator(stack) -> AuthEmulatorClient:
    return AuthEmulatorClient(stack.auth.host, PROJECT)


@pytest.fixture
def functions_env(stack) -> dict[str, str]:
    """The functions' settings, for tests that start servers or call shared/ directly."""
    return {**stack.env(), "PATH": os.environ.get("PATH", "")}


# --- Uploads: the stack's Firestore and Storage emulators, and storage events ---


@pytest.fixture(autouse=True)
def isolate_upload_clients():
    """Clients that shared.visitors.uploads cached in this process are forgotten after each test."""
    yield
    from shared.core import stores

    stores.reset_clients()


@contextlib.contextmanager
def environment(**values: str):
    """Set environment variables while a client reads them at construction."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="session")
def firestore_client(stack):
    """A Firestore client of the test process, on the stack's emulator."""
    from google.cloud import firestore

    with environment(FIRESTORE_EMULATOR_HOST=stack.env()["FIRESTORE_EMULATOR_HOST"]):
        client = firestore.Client(project=PROJECT)
    yield client
    client.close()


@pytest.fixture(scope="session")
def storage_client(stack):
    """A Cloud Storage client of the test process, on the stack's emulator."""
    from google.cloud import storage

    with environment(STORAGE_EMULATOR_HOST=stack.env()["STORAGE_EMULATOR_HOST"]):
        return storage.Client(project=PROJECT)


@pytest.fixture
def firestore(stack, firestore_client):
    """The stack's Firestore, with no documents for this test."""
    stack.firestore.reset()
    return firestore_client


@pytest.fixture
def bucket(stack, storage_client):
    """The stack's bucket, with no objects for this test."""
    stack.storage.reset()
    return storage_client.bucket(BUCKET)


@pytest.fixture
def storage_events(stack) -> StorageEvents:
    return StorageEvents(f"{stack.env()['FUNCTIONS_URL']}/on_upload_finalized")


@pytest.fixture
def uploads_world(stack, api, db, firestore, bucket, storage_events):
    """Everything an upload test needs, each part clean: sessions over HTTP, the
    database, Firestore, the bucket, and finalized events to on_upload_finalized
    (objects carry upload tickets: UploadsWorld.upload)."""
    return UploadsWorld(api, db, firestore, bucket, storage_events, ticket_key=stack.upload_ticket_key)


@pytest.fixture
def ticket_check(stack):
    """What on_upload_finalized passes to shared.visitors.uploads, for tests that call it in process."""
    from shared.visitors.uploads import TicketCheck

    return TicketCheck("enforce", stack.upload_ticket_key.encode())
