"""Who may call run_maintenance: the Cloud Scheduler job's service account, proven by a
Google-signed OIDC token, checked here too (docs/design/maintenance.md)."""

from __future__ import annotations

from shared.core import config, failures
from shared.core.config import ConfigError
from shared.core.errors import PermissionDenied, Unauthenticated
from shared.core.logs import get_logger
from shared.web import refusals

log = get_logger("invoker")

GOOGLE_ISSUERS = ("accounts.google.com", "https://accounts.google.com")


def _bearer(request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated(
            "Send 'Authorization: Bearer <Google-signed OIDC token>' of the maintenance "
            "service account (Cloud Scheduler's --oidc-service-account-email)."
        )
    return token.strip()


def require_invoker(request) -> None:
    """401 without a valid Google ID token for MAINTENANCE_AUDIENCE, 403 for a valid one of another
    identity than MAINTENANCE_INVOKER, 503 when Google's certificates cannot be read. Fails closed:
    with MAINTENANCE_INVOKER unset (make dev, the tests' stack) nobody may call it; locally
    `make maintenance` does the same work."""
    invoker = config.maintenance_invoker()
    if invoker is None:
        raise Unauthenticated(
            "run_maintenance accepts only the OIDC token of MAINTENANCE_INVOKER, which this "
            "server does not set; run `python -m shared.maintenance` (make maintenance) instead."
        )
    audience = config.maintenance_audience()
    if audience is None:
        raise ConfigError(
            "MAINTENANCE_AUDIENCE is not set: with MAINTENANCE_INVOKER, set it to the function's "
            "URL, the audience of the Cloud Scheduler job's OIDC token"
        )
    config.refuse_dev_settings_when_deployed()  # MAINTENANCE_CERTS_URL is for tests only
    token = _bearer(request)
    import google.auth.exceptions
    import google.auth.transport.requests
    from google.oauth2 import id_token

    try:
        claims = id_token.verify_token(
            token, google.auth.transport.requests.Request(), audience=audience, certs_url=config.maintenance_certs_url()
        )
    except google.auth.exceptions.TransportError as error:
        raise failures.unavailable(
            "Google's token certificates", error, "The token certificates are unavailable; try again shortly."
        ) from error
    except (ValueError, google.auth.exceptions.GoogleAuthError) as error:
        # Expired, not yet valid, wrong audience, bad signature, malformed: never say which (the
        # log says which check, by the error's class).
        refusals.log_refused(log, "an OIDC token", token, error)
        raise Unauthenticated("The OIDC token is invalid or expired.") from None
    if claims.get("iss") not in GOOGLE_ISSUERS:
        refusals.log_refused(log, "an OIDC token", token, "issuer")
        raise Unauthenticated("The OIDC token is invalid or expired.")
    if claims.get("email") != invoker or claims.get("email_verified") is not True:
        raise PermissionDenied("This identity may not run the maintenance.")
