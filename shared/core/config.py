"""Settings read from the environment on first use.

A missing or malformed setting raises ConfigError with one line that names the
variable and how to fix it; nothing is read at import time. check() reads every
setting at once and lists all the problems, for the commands that should refuse
to start (`make deploy`, `python -m shared.migrate`) rather than fail later.
"""

from __future__ import annotations

import contextvars
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

T = TypeVar("T")


class ConfigError(RuntimeError):
    """One or more settings are missing or malformed. Its text is one line, the first
    problem, naming its variable (what a first use reports); `problems` has every one
    found, one line each (what check() lists)."""

    def __init__(self, *problems: str):
        super().__init__(problems[0])
        self.problems: tuple[str, ...] = problems


class _Problems:
    """Collects the problems of several settings, so that all are reported at once."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, line: str) -> None:
        self.lines.append(line)

    def read(self, reader: Callable[..., T], *args, **kwargs) -> T | None:
        """reader(*args, **kwargs), or None with its problems noted."""
        try:
            return reader(*args, **kwargs)
        except ConfigError as error:
            self.lines.extend(error.problems)
            return None

    def raise_any(self) -> None:
        if self.lines:
            raise ConfigError(*self.lines)


# While check(environment) runs, the settings are read from that environment instead of the process's.
_environment: contextvars.ContextVar[Mapping[str, str] | None] = contextvars.ContextVar("environment", default=None)


def _get(name: str, default: str = "") -> str:
    environment = _environment.get()
    return (os.environ if environment is None else environment).get(name, default)


def _text(name: str) -> str:
    return _get(name).strip()


def _int(name: str, default: int, minimum: int = 0) -> int:
    raw = _text(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer: set it to a whole number such as {default}") from None
    if value < minimum:
        raise ConfigError(f"{name}={value} is too small: it must be at least {minimum}")
    return value


def _bool(name: str, default: bool = False) -> bool:
    raw = _text(name).lower()
    if not raw:
        return default
    if raw in ("0", "false", "no"):
        return False
    if raw in ("1", "true", "yes"):
        return True
    raise ConfigError(f"{name}={raw!r} is not a boolean: set it to true or false")


@dataclass(frozen=True, kw_only=True)
class DatabaseSettings:
    """Where the database is: a DATABASE_URL, or a Cloud SQL instance; and how it is pooled."""

    url: str | None = None
    instance_connection_name: str | None = None
    user: str | None = None
    password: str | None = None
    name: str | None = None
    iam_auth: bool = False
    ip_type: str = "PUBLIC"
    pool_size: int
    max_overflow: int
    pool_timeout: int
    statement_timeout_ms: int
    prepared_statements: bool = True

    @classmethod
    def from_env(cls) -> DatabaseSettings:
        """The database settings; ConfigError lists every problem among them."""
        problems = _Problems()
        pool: dict[str, Any] = dict(
            pool_size=problems.read(_int, "DB_POOL_SIZE", 5, minimum=1),
            max_overflow=problems.read(_int, "DB_MAX_OVERFLOW", 2),
            pool_timeout=problems.read(_int, "DB_POOL_TIMEOUT", 10, minimum=1),
            statement_timeout_ms=problems.read(_int, "DB_STATEMENT_TIMEOUT_MS", 5000),
            prepared_statements=problems.read(_bool, "DB_PREPARED_STATEMENTS", default=True),
        )
        if _text("INSTANCE_CONNECTION_NAME"):
            where = problems.read(_cloud_sql)
        elif _text("DATABASE_URL"):
            where = problems.read(_database_url)
        else:
            where = {}
            problems.add(
                "DATABASE_URL is not set: set DATABASE_URL=postgresql://USER:PASSWORD@HOST:PORT/DBNAME, "
                "or INSTANCE_CONNECTION_NAME, DB_USER and DB_NAME for Cloud SQL"
            )
        problems.raise_any()
        return cls(**(where or {}), **pool)


def _cloud_sql() -> dict:
    """DatabaseSettings' fields for a Cloud SQL instance (INSTANCE_CONNECTION_NAME and the DB_ settings)."""
    problems = _Problems()
    instance = _text("INSTANCE_CONNECTION_NAME")
    if instance.count(":") != 2:
        problems.add(f"INSTANCE_CONNECTION_NAME={instance!r} is malformed: use PROJECT:REGION:INSTANCE")
    user = _text("DB_USER")
    if not user:
        problems.add("DB_USER is not set: Cloud SQL (INSTANCE_CONNECTION_NAME) needs the database user")
    name = _text("DB_NAME")
    if not name:
        problems.add("DB_NAME is not set: Cloud SQL (INSTANCE_CONNECTION_NAME) needs the database name")
    iam_auth = problems.read(_bool, "DB_IAM_AUTH")
    password = _get("DB_PASS") or None
    if iam_auth is False and not password:
        problems.add("DB_PASS is not set: give the database password, or set DB_IAM_AUTH=true")
    ip_type = _text("DB_IP_TYPE").upper() or "PUBLIC"
    if ip_type not in ("PUBLIC", "PRIVATE", "PSC"):
        problems.add(f"DB_IP_TYPE={ip_type!r} is not one of PUBLIC, PRIVATE, PSC")
    problems.raise_any()
    return dict(
        instance_connection_name=instance, user=user, password=password, name=name, iam_auth=iam_auth, ip_type=ip_type
    )


def _database_url() -> dict:
    """DatabaseSettings' fields for a DATABASE_URL."""
    url = _text("DATABASE_URL")
    if not url.startswith(("postgresql://", "postgres://", "postgresql+pg8000://")):
        raise ConfigError("DATABASE_URL is malformed: use postgresql://USER:PASSWORD@HOST:PORT/DBNAME")
    _check_url_options(url)
    return dict(url=url)


# What a DATABASE_URL may carry after "?", as libpq spells it (shared.core.db maps them onto pg8000).
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
URL_OPTIONS = ("sslmode", "sslrootcert", "application_name")


def _check_url_options(url: str) -> None:
    problems = _Problems()
    for name, values in parse_qs(urlsplit(url).query, keep_blank_values=True).items():
        if name not in URL_OPTIONS:
            problems.add(
                f"DATABASE_URL has the option {name!r}, which is not supported: use only {', '.join(URL_OPTIONS)}"
            )
        if name == "sslmode" and values[-1] not in SSL_MODES:
            problems.add(f"DATABASE_URL has sslmode={values[-1]!r}: use one of {', '.join(SSL_MODES)}")
        if name == "sslrootcert" and not os.path.isfile(values[-1]):
            problems.add(
                f"DATABASE_URL has sslrootcert={values[-1]!r}, which is not a file: "
                "give the path of the server's CA certificate (PEM)"
            )
    problems.raise_any()


def project_id_or_none() -> str | None:
    """The Google Cloud / Firebase project id (GOOGLE_CLOUD_PROJECT), or None if unset."""
    return _text("GOOGLE_CLOUD_PROJECT") or _text("GCLOUD_PROJECT") or None


def project_id() -> str:
    """The Google Cloud / Firebase project id (GOOGLE_CLOUD_PROJECT); needed for ID tokens and uploads."""
    project = project_id_or_none()
    if not project:
        raise ConfigError("GOOGLE_CLOUD_PROJECT is not set: set it to your Firebase project id")
    return project


def allowed_origins() -> frozenset[str]:
    """Browser origins granted CORS (ALLOWED_ORIGINS, comma-separated; empty grants none)."""
    raw = _get("ALLOWED_ORIGINS")
    origins = {o.strip().rstrip("/") for o in raw.split(",") if o.strip()}
    problems = _Problems()
    for origin in sorted(origins):
        if origin != "*" and not origin.startswith(("http://", "https://")):
            problems.add(
                f"ALLOWED_ORIGINS has {origin!r}, which is not an origin: use scheme://host[:port], comma-separated"
            )
    problems.raise_any()
    return frozenset(origins)


def retry_after_seconds() -> int:
    """What a 503 tells the client to wait before trying again (RETRY_AFTER_SECONDS)."""
    return _int("RETRY_AFTER_SECONDS", 2, minimum=1)


# Bucket names: 3-63 characters (up to 222 with dots), lowercase letters, digits,
# dashes, underscores and dots, starting and ending with a letter or digit.
_BUCKET_NAME = re.compile(r"[a-z0-9](?:[a-z0-9._-]{1,220}[a-z0-9])?")


def storage_bucket() -> str | None:
    """The Cloud Storage bucket that uploads go to (STORAGE_BUCKET); None if unset.

    The storage trigger takes the bucket from each event; when this is set it
    acknowledges events of any other bucket without touching them.
    """
    raw = _text("STORAGE_BUCKET")
    if not raw:
        return None
    name = raw.removeprefix("gs://").rstrip("/")
    if not _BUCKET_NAME.fullmatch(name):
        raise ConfigError(
            f"STORAGE_BUCKET={raw!r} is not a bucket name: use lowercase letters, digits, - _ . "
            "such as my-project.appspot.com"
        )
    return name


def required_storage_bucket() -> str:
    """STORAGE_BUCKET where it is needed, not only checked: a withdrawal deletes the
    visitor's objects from it (delete_my_data, erase_visitor, `python -m shared.erasure`)."""
    bucket = storage_bucket()
    if bucket is None:
        raise ConfigError(
            "STORAGE_BUCKET is not set: withdrawal deletes a visitor's uploads from it; "
            "set it to the uploads bucket, such as my-project.appspot.com"
        )
    return bucket


def upload_event_max_age_seconds() -> int:
    """How old a storage event may be and still be handled (UPLOAD_EVENT_MAX_AGE_SECONDS, default 24 h).

    Older events are logged and acknowledged, so that an event that keeps failing
    is not retried for ever.
    """
    return _int("UPLOAD_EVENT_MAX_AGE_SECONDS", 86400, minimum=1)


def claim_code_ttl_seconds() -> int:
    """How long a claim code (create_claim_code, docs/api.md) can be redeemed
    (CLAIM_CODE_TTL_SECONDS, default 10 minutes)."""
    return _int("CLAIM_CODE_TTL_SECONDS", 600, minimum=1)


def token_revocation_check_seconds() -> int:
    """How long a user's revocation state, read from Firebase Auth, is trusted by this instance
    (TOKEN_REVOCATION_CHECK_SECONDS, default 300; 0 reads it on every request). shared/web/auth.py
    says what this trades: a revocation made after the read can go unnoticed for this long."""
    return _int("TOKEN_REVOCATION_CHECK_SECONDS", 300)


def guest_limit_per_hour() -> int:
    """New guests per client address per rolling hour (GUEST_LIMIT_PER_HOUR, default 200; 0 turns
    the limit off). docs/operations.md: a lab or classroom behind one address needs more."""
    return _int("GUEST_LIMIT_PER_HOUR", 200)


def session_limit_per_hour() -> int:
    """New sessions per visitor per rolling hour (SESSION_LIMIT_PER_HOUR, default 300; 0 turns the
    limit off). docs/operations.md: generous, as one visitor's page makes a session per visit."""
    return _int("SESSION_LIMIT_PER_HOUR", 300)


# An HMAC key shorter than this could be guessed: addresses unhashed, upload tickets forged.
SECRET_KEY_MIN_LENGTH = 32


def _secret_key(name: str, what: str, otherwise: str) -> bytes:
    """An HMAC-SHA256 key from the environment; ConfigError naming `name` when it is missing or short."""
    raw = _get(name)
    if not raw:
        raise ConfigError(
            f"{name} is not set: {what}; set it to a random secret of at least "
            f"{SECRET_KEY_MIN_LENGTH} characters ({otherwise})"
        )
    if len(raw) < SECRET_KEY_MIN_LENGTH:
        raise ConfigError(
            f"{name} is too short: use a random secret of at least "
            f"{SECRET_KEY_MIN_LENGTH} characters, such as `openssl rand -base64 32`"
        )
    return raw.encode("utf-8")


def guest_limit_key() -> bytes:
    """The secret that client addresses are hashed with (GUEST_LIMIT_KEY, HMAC-SHA256), so that
    the database holds no address. Needed while the guest-creation limit is on."""
    return _secret_key(
        "GUEST_LIMIT_KEY", "the guest-creation limit hashes client addresses with it", "or GUEST_LIMIT_PER_HOUR=0"
    )


def _guest_limit() -> None:
    """GUEST_LIMIT_PER_HOUR, and GUEST_LIMIT_KEY when it is set (for check(): the commands that
    check settings - migrate, backfill, erasure, deploy - need no key; create_session fails at
    its first new guest without one, and `make deploy` gives it from Secret Manager)."""
    guest_limit_per_hour()
    if _get("GUEST_LIMIT_KEY"):
        guest_limit_key()


def participant_key() -> bytes:
    """The secret a study's participants are hashed with in the participation ledger
    (PARTICIPANT_KEY, HMAC-SHA256; sql/012_studies.sql): already_participated outlives a
    withdrawal without the ledger holding anything readable. Needed by create_session and
    complete_session for configured experiments; changing it forgets who took part."""
    return _secret_key(
        "PARTICIPANT_KEY",
        "the participation ledger hashes a study's participants with it",
        "keep it for as long as the studies run",
    )


def _participant_key() -> None:
    if _get("PARTICIPANT_KEY"):
        participant_key()


PROLIFIC_API_URL = "https://api.prolific.com"


def prolific_api_token() -> str | None:
    """The Prolific API token that completes submissions from the server (PROLIFIC_API_TOKEN,
    SPEC §14.5; a Secret Manager secret where deployed); unset: no experiment completes on
    Prolific from the server. Never logged."""
    return _text("PROLIFIC_API_TOKEN") or None


def prolific_api_url() -> str:
    """Where Prolific's API answers (PROLIFIC_API_URL, default https://api.prolific.com): an https
    URL, or a server on this machine for tests (http://127.0.0.1:PORT)."""
    raw = (_text("PROLIFIC_API_URL") or PROLIFIC_API_URL).rstrip("/")
    parts = urlsplit(raw)
    if not ((parts.scheme == "https" and parts.hostname) or (parts.scheme == "http" and _local(raw))):
        raise ConfigError(
            f"PROLIFIC_API_URL={raw!r} must be an https:// URL such as {PROLIFIC_API_URL} "
            "(or http://127.0.0.1:PORT for tests)"
        )
    return raw


UPLOAD_TICKETS_MODES = ("enforce", "monitor", "off")


def upload_tickets_mode() -> str:
    """What the storage trigger does with an object under sessions/ whose uploadTicket does not
    verify (UPLOAD_TICKETS, docs/design/upload-tickets.md): enforce (default: deletes it, records
    nothing), monitor (tags and records it, and logs a warning) or off (tickets are not read)."""
    raw = _text("UPLOAD_TICKETS").lower()
    if not raw:
        return "enforce"
    if raw not in UPLOAD_TICKETS_MODES:
        raise ConfigError(f"UPLOAD_TICKETS={raw!r} is not a mode: use one of {', '.join(UPLOAD_TICKETS_MODES)}")
    return raw


def upload_ticket_ttl_seconds() -> int:
    """How long an upload ticket from create_upload_ticket lasts: the object must be created
    before it expires (UPLOAD_TICKET_TTL_SECONDS, default 3600)."""
    return _int("UPLOAD_TICKET_TTL_SECONDS", 3600, minimum=1)


def upload_ticket_key() -> bytes:
    """The secret upload tickets are signed with (UPLOAD_TICKET_KEY, HMAC-SHA256): needed by
    create_upload_ticket, and by the storage trigger unless UPLOAD_TICKETS=off."""
    return _secret_key(
        "UPLOAD_TICKET_KEY", "upload tickets are signed with it", "or UPLOAD_TICKETS=off on the storage trigger"
    )


def _upload_tickets() -> None:
    """UPLOAD_TICKETS, UPLOAD_TICKET_TTL_SECONDS, and UPLOAD_TICKET_KEY when it is set (for check():
    the commands need no key; create_upload_ticket and the trigger fail at first use without one,
    and `make deploy` gives it from Secret Manager)."""
    upload_tickets_mode()
    upload_ticket_ttl_seconds()
    if _get("UPLOAD_TICKET_KEY"):
        upload_ticket_key()


def x_forwarded_for_trusted() -> bool:
    """Whether X-Forwarded-For was written by a front end that appends the client's address to it:
    always where deployed (Google's front end, deployed()); elsewhere only with X_FORWARDED_FOR_TRUSTED=true
    (tests that stand in for the front end). Without one, the header is the client's own words
    (docs/design/client-address.md)."""
    return deployed() is not None or _bool("X_FORWARDED_FOR_TRUSTED")


def guest_retention_days() -> int | None:
    """Erase empty, unclaimed guests with no session newer than this many days (GUEST_RETENTION_DAYS;
    unset: never). docs/operations.md."""
    if not _text("GUEST_RETENTION_DAYS"):
        return None
    return _int("GUEST_RETENTION_DAYS", 30, minimum=1)


def maintenance_invoker() -> str | None:
    """The one identity allowed to call run_maintenance (MAINTENANCE_INVOKER, a service account
    email; `make deploy` sets the scheduler's); unset: nobody may (shared/web/invoker.py)."""
    raw = _text("MAINTENANCE_INVOKER")
    if raw and "@" not in raw:
        raise ConfigError(
            f"MAINTENANCE_INVOKER={raw!r} is not a service account email: use NAME@PROJECT.iam.gserviceaccount.com"
        )
    return raw or None


def maintenance_audience() -> str | None:
    """The audience run_maintenance's OIDC token must name (MAINTENANCE_AUDIENCE, the function's URL,
    as the Cloud Scheduler job's --oidc-token-audience); needed with MAINTENANCE_INVOKER."""
    return _text("MAINTENANCE_AUDIENCE") or None


GOOGLE_OAUTH2_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"
# The hosts a test-only URL may name, exactly: the whole authority is compared (urlsplit's hostname
# alone reads http://[::1].attacker.example/ as ::1), with no user info and an optional port.
_LOCAL_AUTHORITY = re.compile(r"(?:127\.0\.0\.1|localhost|\[::1\])(?::\d{1,5})?", re.IGNORECASE)


def _local(url: str) -> bool:
    """Whether an http(s) URL names a server on this machine (127.0.0.1, localhost or ::1)."""
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(_LOCAL_AUTHORITY.fullmatch(parts.netloc))


def maintenance_certs_url() -> str:
    """Where Google's OIDC token signing certificates are read (MAINTENANCE_CERTS_URL; tests point it
    at a local server, production leaves it unset)."""
    raw = _text("MAINTENANCE_CERTS_URL") or GOOGLE_OAUTH2_CERTS_URL
    # The host compared whole, as the URL is parsed: a prefix test let http://127.0.0.1.attacker.example/
    # and http://localhost@attacker.example/ through.
    parts = urlsplit(raw)
    if not ((parts.scheme == "https" and parts.hostname) or (parts.scheme == "http" and _local(raw))):
        raise ConfigError(f"MAINTENANCE_CERTS_URL={raw!r} must be an https:// URL (or a local one for tests)")
    return raw


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def log_level() -> str:
    """The level of the functions' log lines (LOG_LEVEL, any case; default INFO)."""
    raw = _text("LOG_LEVEL")
    if not raw:
        return "INFO"
    if raw.upper() not in LOG_LEVELS:
        raise ConfigError(f"LOG_LEVEL={raw!r} is not a log level: use one of {', '.join(LOG_LEVELS)}")
    return raw.upper()


APP_CHECK_MODES = ("off", "monitor", "enforce")


def app_check_mode() -> str:
    """What the visitor-facing functions do with X-Firebase-AppCheck (APP_CHECK, docs/operations.md):
    off (default: the header is ignored), monitor (verified and logged, never refused) or
    enforce (a missing or invalid token is 401)."""
    raw = _text("APP_CHECK").lower()
    if not raw:
        return "off"
    if raw not in APP_CHECK_MODES:
        raise ConfigError(f"APP_CHECK={raw!r} is not a mode: use one of {', '.join(APP_CHECK_MODES)}")
    return raw


def app_check_jwks_url() -> str | None:
    """Tests and dev only: where the App Check public keys are fetched from instead of
    firebase-admin's https://firebaseappcheck.googleapis.com/v1/jwks (APP_CHECK_JWKS_URL).
    Only a server on this machine is accepted, so that the setting cannot point a deployed
    function at someone else's keys; `make deploy` refuses it altogether."""
    raw = _text("APP_CHECK_JWKS_URL")
    if not raw:
        return None
    if not _local(raw):
        raise ConfigError(
            f"APP_CHECK_JWKS_URL={raw!r} is for tests only: it must be a local server "
            "(http://127.0.0.1:PORT/...); unset it to use Google's App Check keys"
        )
    return raw


# --- Settings of local development and tests, refused where the code is deployed ---

# Cloud Run sets K_SERVICE, K_REVISION and K_CONFIGURATION in every container of a service, Cloud Run
# functions (Cloud Functions 2nd gen) included ("Container runtime contract", environment variables:
# https://cloud.google.com/run/docs/container-contract#env-vars). devtools/serve.py, devtools/stack.py
# and the tests set none of them.
DEPLOYED_SIGNALS = ("K_SERVICE", "K_REVISION", "K_CONFIGURATION")
# What points the product at an emulator or a local key server. FIREBASE_AUTH_EMULATOR_HOST makes
# firebase-admin accept unsigned ID tokens (any uid, any claim: `researcher: true`); the others
# point Firestore, Storage, or the App Check and OIDC keys at a server of someone's choosing.
DEV_ONLY_SETTINGS = (
    "FIREBASE_AUTH_EMULATOR_HOST",
    "FIRESTORE_EMULATOR_HOST",
    "STORAGE_EMULATOR_HOST",
    "FIREBASE_STORAGE_EMULATOR_HOST",
    "APP_CHECK_JWKS_URL",
    "MAINTENANCE_CERTS_URL",
)


def deployed() -> str | None:
    """The Cloud Run signal that says this code is deployed (such as "K_SERVICE"), None locally."""
    return next((name for name in DEPLOYED_SIGNALS if _text(name)), None)


def refuse_dev_settings_when_deployed() -> None:
    """ConfigError (one line naming them) when the code is deployed and any of DEV_ONLY_SETTINGS
    is set: checked by check() and where the Firebase app and the Storage and Firestore clients
    are made, so that an emulator's unsigned tokens are never accepted by a deployed function."""
    signal = deployed()
    if signal is None:
        return
    found = [name for name in DEV_ONLY_SETTINGS if _text(name)]
    if found:
        raise ConfigError(
            f"{', '.join(found)} {'is' if len(found) == 1 else 'are'} for local development and "
            f"tests only, and this is a deployed function ({signal}={_text(signal)!r}): unset "
            f"{'it' if len(found) == 1 else 'them'} (an emulator accepts unsigned tokens)"
        )


# Every runtime setting, as the functions read it. GOOGLE_CLOUD_PROJECT is not among them:
# only ID tokens and uploads need it (project_id fails at their first use), and the
# migration and backfill commands run without it.
_READERS = (
    DatabaseSettings.from_env,
    allowed_origins,
    retry_after_seconds,
    storage_bucket,
    upload_event_max_age_seconds,
    claim_code_ttl_seconds,
    token_revocation_check_seconds,
    log_level,
    app_check_mode,
    app_check_jwks_url,
    _guest_limit,
    session_limit_per_hour,
    _upload_tickets,
    _participant_key,
    prolific_api_url,
    x_forwarded_for_trusted,
    guest_retention_days,
    maintenance_invoker,
    maintenance_audience,
    maintenance_certs_url,
    refuse_dev_settings_when_deployed,
)


def check(environment: Mapping[str, str] | None = None) -> list[str]:
    """Every problem of every runtime setting, one line each; empty when all are fine.

    Reads the process environment, or `environment` (what a function will be deployed
    with). Commands call it before they start anything, so that a person sees the whole
    list at once rather than one failure per attempt.
    """
    problems = _Problems()
    token = _environment.set(environment)
    try:
        for reader in _READERS:
            problems.read(reader)
    finally:
        _environment.reset(token)
    return problems.lines
