"""Firebase App Check on the visitor-facing functions: was the request made by this
product's web app? Off, monitor or enforce per APP_CHECK (docs/design/app-check.md)."""

from __future__ import annotations

from dataclasses import dataclass

from shared.core import config, failures
from shared.core.config import ConfigError
from shared.core.errors import Unauthenticated
from shared.core.logs import get_logger
from shared.web import refusals
from shared.web.auth import firebase_app

log = get_logger("app_check")

HEADER = "X-Firebase-AppCheck"
_HINT = f"Send '{HEADER}: <App Check token>' from the web app (Firebase App Check)."
_UNAVAILABLE = "Could not verify the App Check token right now; try again shortly."
# How long the fetched public keys are kept, as firebase-admin keeps Google's (6 hours,
# the longest the App Check API allows: https://firebase.google.com/docs/reference/appcheck/rest/v1beta/jwks).
_KEYS_LIFESPAN_SECONDS = 21600


@dataclass(frozen=True)
class _Verdict:
    refused: str | None = None  # why the token is refused, for a person (no token text)
    unavailable: BaseException | None = None  # the keys could not be fetched


def check_request(request) -> None:
    """Apply APP_CHECK to a visitor-facing request: return to serve it; Unauthenticated
    (enforce) for a missing or invalid token; DependencyUnavailable (enforce) when the
    keys cannot be fetched. Runs before anything else reads the request or the database."""
    mode = config.app_check_mode()
    if mode == "off":
        return
    verdict = _verify(request.headers.get(HEADER, "").strip())
    if verdict.refused is None and verdict.unavailable is None:
        return
    if mode == "monitor":
        unverified = failures.one_line(verdict.unavailable) if verdict.unavailable else "unknown"
        what = verdict.refused or f"the token could not be verified ({unverified})"
        log.warning("App Check (monitor): %s %s would have been refused: %s", request.method, request.path, what)
        return
    if verdict.unavailable is not None:
        raise failures.unavailable("App Check", verdict.unavailable, _UNAVAILABLE) from None
    raise Unauthenticated(f"{verdict.refused} {_HINT}")


def _verify(token: str) -> _Verdict:
    if not token:
        return _Verdict(refused=f"The {HEADER} header is missing.")
    import jwt
    from firebase_admin import app_check
    from google.auth.exceptions import DefaultCredentialsError

    try:
        app_check.verify_token(token, app=_app())
    except ValueError as error:
        # firebase-admin turns every fault of the token itself into ValueError: PyJWT's
        # InvalidTokenError/DecodeError (malformed, bad signature, wrong audience or issuer,
        # expired), and a wrong typ/alg header (app_check.py, verify_token/_decode_and_verify).
        refusals.log_refused(log, "an App Check token", token, error)
        if isinstance(error.__cause__, jwt.ExpiredSignatureError):
            return _Verdict(refused=f"The {HEADER} token has expired.")
        return _Verdict(refused=f"The {HEADER} token is not valid.")
    except jwt.PyJWKClientConnectionError as error:
        # Not caught by firebase-admin (it catches InvalidTokenError and DecodeError only):
        # PyJWKClient could not fetch the key set (network, timeout, an HTTP error status).
        return _Verdict(unavailable=error)
    except jwt.PyJWKSetError as error:
        # The key set was fetched but holds no usable key.
        return _Verdict(unavailable=error)
    except jwt.PyJWKClientError as error:
        # PyJWKClientError besides the above: the set was fetched and has no key with the
        # token's kid ("Unable to find a signing key that matches"), which is the token's
        # fault; or the endpoint answered something other than a key set, which is not.
        if "Unable to find a signing key" in str(error):
            refusals.log_refused(log, "an App Check token", token, "PyJWKClientError (no key with its kid)")
            return _Verdict(refused=f"The {HEADER} token is not valid.")
        return _Verdict(unavailable=error)
    except DefaultCredentialsError as error:
        # firebase-admin 7.7 makes an HTTP client (for replay protection, unused here)
        # with the app's credentials when the App Check service is first made.
        raise ConfigError(
            "APP_CHECK needs Google credentials: on Cloud Run the function's service account "
            "gives them; elsewhere set GOOGLE_APPLICATION_CREDENTIALS "
            f"({failures.one_line(error)})"
        ) from None
    return _Verdict()


def _app():
    """shared.web.auth's Firebase app; with APP_CHECK_JWKS_URL (tests and dev only), its App Check
    service fetches the keys from that local server instead of Google's."""
    app = firebase_app()
    url = config.app_check_jwks_url()
    if url:
        import jwt
        from firebase_admin import app_check

        # firebase-admin has no option for the key set's URL: its service reads the class
        # constant _JWKS_URL into a PyJWKClient when it is made (app_check.py,
        # _AppCheckService.__init__). Only this app's service is changed, not the class.
        service = app_check._get_app_check_service(app)
        if service._jwks_client.uri != url:
            service._jwks_client = jwt.PyJWKClient(url, lifespan=_KEYS_LIFESPAN_SECONDS)
    return app
