"""Settings read from the environment on first use.

A missing or malformed setting raises ConfigError with one line that names the
variable and how to fix it; nothing is read at import time.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

class ConfigError(RuntimeError):
    """A setting is missing or malformed."""


def _int(name: str, default: int, minimum: int = 0) -> int:
    raw = os.environ.get(name, "").strip()
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
    raw = os.environ.get(name, "").strip().lower()
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
    def from_env(cls) -> "DatabaseSettings":
        instance = os.environ.get("INSTANCE_CONNECTION_NAME", "").strip() or None
        url = os.environ.get("DATABASE_URL", "").strip() or None
        common = dict(
            pool_size=_int("DB_POOL_SIZE", 5, minimum=1),
            max_overflow=_int("DB_MAX_OVERFLOW", 2),
            pool_timeout=_int("DB_POOL_TIMEOUT", 10, minimum=1),
            statement_timeout_ms=_int("DB_STATEMENT_TIMEOUT_MS", 5000),
            prepared_statements=_bool("DB_PREPARED_STATEMENTS", default=True),
        )
        if instance:
            if instance.count(":") != 2:
                raise ConfigError(
                    f"INSTANCE_CONNECTION_NAME={instance!r} is malformed: use PROJECT:REGION:INSTANCE"
                )
            user = os.environ.get("DB_USER", "").strip()
            name = os.environ.get("DB_NAME", "").strip()
            iam_auth = _bool("DB_IAM_AUTH")
            password = os.environ.get("DB_PASS")
            if not user:
                raise ConfigError("DB_USER is not set: Cloud SQL (INSTANCE_CONNECTION_NAME) needs the database user")
            if not name:
                raise ConfigError("DB_NAME is not set: Cloud SQL (INSTANCE_CONNECTION_NAME) needs the database name")
            if not iam_auth and not password:
                raise ConfigError("DB_PASS is not set: give the database password, or set DB_IAM_AUTH=true")
            ip_type = os.environ.get("DB_IP_TYPE", "PUBLIC").strip().upper()
            if ip_type not in ("PUBLIC", "PRIVATE", "PSC"):
                raise ConfigError(f"DB_IP_TYPE={ip_type!r} is not one of PUBLIC, PRIVATE, PSC")
            return cls(instance_connection_name=instance, user=user, password=password, name=name,
                       iam_auth=iam_auth, ip_type=ip_type, **common)
        if url:
            if not url.startswith(("postgresql://", "postgres://", "postgresql+pg8000://")):
                raise ConfigError(
                    "DATABASE_URL is malformed: use postgresql://USER:PASSWORD@HOST:PORT/DBNAME"
                )
            _check_url_options(url)
            return cls(url=url, **common)
        raise ConfigError(
            "DATABASE_URL is not set: set DATABASE_URL=postgresql://USER:PASSWORD@HOST:PORT/DBNAME, "
            "or INSTANCE_CONNECTION_NAME, DB_USER and DB_NAME for Cloud SQL"
        )


# What a DATABASE_URL may carry after "?", as libpq spells it (shared.db maps them onto pg8000).
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
URL_OPTIONS = ("sslmode", "sslrootcert", "application_name")


def _check_url_options(url: str) -> None:
    for name, values in parse_qs(urlsplit(url).query, keep_blank_values=True).items():
        if name not in URL_OPTIONS:
            raise ConfigError(f"DATABASE_URL has the option {name!r}, which is not supported: "
                              f"use only {', '.join(URL_OPTIONS)}")
        if name == "sslmode" and values[-1] not in SSL_MODES:
            raise ConfigError(f"DATABASE_URL has sslmode={values[-1]!r}: use one of {', '.join(SSL_MODES)}")
        if name == "sslrootcert" and not os.path.isfile(values[-1]):
            raise ConfigError(f"DATABASE_URL has sslrootcert={values[-1]!r}, which is not a file: "
                              "give the path of the server's CA certificate (PEM)")


def project_id_or_none() -> str | None:
    """The Google Cloud / Firebase project id (GOOGLE_CLOUD_PROJECT), or None if unset."""
    return os.environ.get("GOOGLE_CLOUD_PROJECT", "").strip() or os.environ.get("GCLOUD_PROJECT", "").strip() or None


def project_id() -> str:
    """The Google Cloud / Firebase project id (GOOGLE_CLOUD_PROJECT); needed for ID tokens and uploads."""
    project = project_id_or_none()
    if not project:
        raise ConfigError("GOOGLE_CLOUD_PROJECT is not set: set it to your Firebase project id")
    return project


def allowed_origins() -> frozenset[str]:
    """Browser origins granted CORS (ALLOWED_ORIGINS, comma-separated; empty grants none)."""
    raw = os.environ.get("ALLOWED_ORIGINS", "")
    origins = {o.strip().rstrip("/") for o in raw.split(",") if o.strip()}
    for origin in origins:
        if origin != "*" and not origin.startswith(("http://", "https://")):
            raise ConfigError(
                f"ALLOWED_ORIGINS has {origin!r}, which is not an origin: use scheme://host[:port], comma-separated"
            )
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
    raw = os.environ.get("STORAGE_BUCKET", "").strip()
    if not raw:
        return None
    name = raw.removeprefix("gs://").rstrip("/")
    if not _BUCKET_NAME.fullmatch(name):
        raise ConfigError(
            f"STORAGE_BUCKET={raw!r} is not a bucket name: use lowercase letters, digits, - _ . "
            "such as my-project.appspot.com"
        )
    return name


def upload_event_max_age_seconds() -> int:
    """How old a storage event may be and still be handled (UPLOAD_EVENT_MAX_AGE_SECONDS, default 24 h).

    Older events are logged and acknowledged, so that an event that keeps failing
    is not retried for ever.
    """
    return _int("UPLOAD_EVENT_MAX_AGE_SECONDS", 86400, minimum=1)


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def log_level() -> str:
    """The level of the functions' log lines (LOG_LEVEL, any case; default INFO)."""
    raw = os.environ.get("LOG_LEVEL", "").strip()
    if not raw:
        return "INFO"
    if raw.upper() not in LOG_LEVELS:
        raise ConfigError(f"LOG_LEVEL={raw!r} is not a log level: use one of {', '.join(LOG_LEVELS)}")
    return raw.upper()
