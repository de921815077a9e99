"""Every function of main.py on one port, at /<function_name> and /api/<function_name>, the
pages of public/ at / and the example study at /examples/jspsych/; run with gunicorn:
`devtools.serve:app` (docs/design/emulators.md)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from functions_framework import create_app
from werkzeug.middleware.shared_data import SharedDataMiddleware

from devtools import firebase_storage
from devtools.wsgi import answer
from functions import NAMES

ROOT = Path(__file__).resolve().parent.parent
PUBLIC = ROOT / "public"
EXAMPLE = ROOT / "examples" / "jspsych" / "public"  # the example study (docs/jspsych.md)


def page_config(environ) -> dict:
    """What the page needs to find the functions and the emulators (served as /config.json).
    The Storage SDK reaches the emulator through this server (firebase_storage), at the
    host:port the page was loaded from."""
    return {
        "functionsUrl": "/api",
        "authEmulatorUrl": (
            f"http://{os.environ['FIREBASE_AUTH_EMULATOR_HOST']}"
            if os.environ.get("FIREBASE_AUTH_EMULATOR_HOST")
            else ""
        ),
        "storageEmulatorHost": environ.get("HTTP_HOST", "") if os.environ.get("STORAGE_EMULATOR_HOST") else "",
        "bucket": os.environ.get("STORAGE_BUCKET", ""),
        # The page's guest is a Firebase anonymous account rather than a key (docs/api.md).
        "anonymousAuth": os.environ.get("ANONYMOUS_AUTH", "").strip().lower() in ("1", "true", "yes"),
        **app_check_config(),
    }


def app_check_config() -> dict:
    """The page's App Check settings (public/app_check.js), only when APP_CHECK_SITE_KEY is set:
    App Check tokens come from Google's App Check API, for a real Firebase project only."""
    site_key = os.environ.get("APP_CHECK_SITE_KEY", "").strip()
    if not site_key:
        return {}
    debug_token: str | bool = os.environ.get("APP_CHECK_DEBUG_TOKEN", "").strip()
    if str(debug_token).lower() == "true":
        debug_token = True  # the SDK makes a debug token and prints it in the browser console
    return {"appCheck": {"siteKey": site_key, **({"debugToken": debug_token} if debug_token else {})}}


def firebase_init(_environ) -> dict:
    """The Firebase web config of the demo project (what Hosting serves at /__/firebase/init.json)."""
    project = os.environ.get("GOOGLE_CLOUD_PROJECT", "demo-visitors")
    return {
        "apiKey": "demo-api-key",  # the emulators accept any key
        "projectId": project,
        "authDomain": f"{project}.firebaseapp.com",
        "storageBucket": os.environ.get("STORAGE_BUCKET", ""),
    }


DEV_FILES = {"/config.json": page_config, "/__/firebase/init.json": firebase_init}


def _page_app(missing: bytes):
    """public/ (index.html for /) served by werkzeug's SharedDataMiddleware, the DEV_FILES
    made from the environment; anything else is the JSON 404 of the functions."""

    def not_found(environ, start_response):
        return answer(start_response, 404, missing)

    files = SharedDataMiddleware(not_found, {"/": str(PUBLIC), "/examples/jspsych": str(EXAMPLE)}, cache_timeout=0)

    def page(environ, start_response):
        if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
            return not_found(environ, start_response)
        path = environ.get("PATH_INFO", "")
        if path in DEV_FILES:
            body = json.dumps(DEV_FILES[path](environ), indent=2).encode()
            return answer(start_response, 200, body)
        if path in ("", "/"):
            environ["PATH_INFO"] = "/index.html"
        elif path == "/examples/jspsych/":
            environ["PATH_INFO"] = path + "index.html"
        return files(environ, start_response)

    return page


def build_app(source: Path = ROOT / "main.py"):
    names = list(NAMES)  # every row of functions.FUNCTIONS
    apps = {name: create_app(name, str(source)) for name in names}
    missing = json.dumps(
        {"error": {"code": "not_found", "message": f"No function here; try one of: {', '.join(names)}."}}
    ).encode()
    page = _page_app(missing)

    def dispatch(environ, start_response):
        # /create_session and /create_session/... both reach the function at "/",
        # as on Cloud Functions (no redirect to a trailing slash); /api/<name> is the
        # same function, as the hosting rewrites of firebase.json route it.
        path = environ.get("PATH_INFO", "")
        name, _, rest = path.lstrip("/").partition("/")
        prefix = ""
        if name == "api":
            prefix = "/api"
            name, _, rest = rest.partition("/")
        elif name == firebase_storage.PREFIX:
            return firebase_storage.app(environ, start_response)
        app = apps.get(name)
        if app is None:
            if prefix:
                return answer(start_response, 404, missing)
            return page(environ, start_response)
        environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + prefix + "/" + name
        environ["PATH_INFO"] = "/" + rest
        return app(environ, start_response)

    return dispatch


app = build_app()
