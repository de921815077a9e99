"""Every function of main.py on one port, each at /<function_name> and at
/api/<function_name> (the rewrite of firebase.json's hosting section), and the
page of public/ at / for every other path.

Each mount is the real functions-framework app for that target (create_app),
so a request is handled exactly as `functions-framework --target NAME` would
handle it; this module only dispatches by the first path segment, the way
Cloud Functions names its URLs. Run it with gunicorn: `devtools.serve:app`.

Dev only, never deployed: /config.json tells the page where the emulators are
(in place of public/config.json, the production values), /__/firebase/init.json
is a demo Firebase web config (Firebase Hosting serves the project's real one
there), and /storage/... forwards to the Storage emulator (gcp-storage-emulator sends
no CORS headers, so the page reaches it same-origin through here).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import quote

from functions_framework import create_app
from werkzeug.middleware.shared_data import SharedDataMiddleware

from functions import HTTP_FUNCTIONS, STORAGE_TRIGGER

ROOT = Path(__file__).resolve().parent.parent
PUBLIC = ROOT / "public"
STORAGE_PREFIX = "storage"  # dev-only proxy to the Storage emulator


def page_config() -> dict:
    """What the page needs to find the functions and the emulators (served as /config.json)."""
    return {
        "functionsUrl": "/api",
        "authEmulatorUrl": (f"http://{os.environ['FIREBASE_AUTH_EMULATOR_HOST']}"
                            if os.environ.get("FIREBASE_AUTH_EMULATOR_HOST") else ""),
        "storageUrl": f"/{STORAGE_PREFIX}" if os.environ.get("STORAGE_EMULATOR_HOST") else "",
        "bucket": os.environ.get("STORAGE_BUCKET", ""),
        **app_check_config(),
    }


def app_check_config() -> dict:
    """The page's App Check settings (public/app_check.js), only when APP_CHECK_SITE_KEY is set:
    App Check tokens come from Google's App Check API, for a real Firebase project only."""
    site_key = os.environ.get("APP_CHECK_SITE_KEY", "").strip()
    if not site_key:
        return {}
    debug_token = os.environ.get("APP_CHECK_DEBUG_TOKEN", "").strip()
    if debug_token.lower() == "true":
        debug_token = True  # the SDK makes a debug token and prints it in the browser console
    return {"appCheck": {"siteKey": site_key, **({"debugToken": debug_token} if debug_token else {})}}


def firebase_init() -> dict:
    """The Firebase web config of the demo project (what Hosting serves at /__/firebase/init.json)."""
    project = os.environ.get("GOOGLE_CLOUD_PROJECT", "demo-visitors")
    return {"apiKey": "demo-api-key",  # the emulators accept any key
            "projectId": project, "authDomain": f"{project}.firebaseapp.com",
            "storageBucket": os.environ.get("STORAGE_BUCKET", "")}


DEV_FILES = {"/config.json": page_config, "/__/firebase/init.json": firebase_init}


def _answer(start_response, status: str, body: bytes, content_type: str, extra=()):
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body))), *extra])
    return [body]


def _page_app(missing: bytes):
    """public/ (index.html for /) served by werkzeug's SharedDataMiddleware, the DEV_FILES
    made from the environment; anything else is the JSON 404 of the functions."""

    def not_found(environ, start_response):
        return _answer(start_response, "404 Not Found", missing, "application/json")

    files = SharedDataMiddleware(not_found, {"/": str(PUBLIC)}, cache_timeout=0)

    def page(environ, start_response):
        if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
            return not_found(environ, start_response)
        path = environ.get("PATH_INFO", "")
        if path in DEV_FILES:
            body = json.dumps(DEV_FILES[path](), indent=2).encode()
            return _answer(start_response, "200 OK", body, "application/json", [("Cache-Control", "no-store")])
        if path in ("", "/"):
            environ["PATH_INFO"] = "/index.html"
        return files(environ, start_response)

    return page


def _storage_proxy(environ, start_response, rest: str):
    """Dev only: forward /storage/<path>?<query> to the Storage emulator, same-origin for the page."""
    import requests

    emulator = os.environ.get("STORAGE_EMULATOR_HOST", "").rstrip("/")
    if not emulator:
        body = json.dumps({"error": {"code": "not_found", "message": "No Storage emulator here."}}).encode()
        return _answer(start_response, "404 Not Found", body, "application/json")
    length = int(environ.get("CONTENT_LENGTH") or 0)
    data = environ["wsgi.input"].read(length) if length else None
    # The raw URI keeps an object name's %2F encoded (PATH_INFO has it decoded).
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw and raw.startswith(f"/{STORAGE_PREFIX}/"):
        url = emulator + raw[len(STORAGE_PREFIX) + 1:]
    else:
        query = environ.get("QUERY_STRING", "")
        url = f"{emulator}/{quote(rest, safe='/%')}" + (f"?{query}" if query else "")
    headers = {"Content-Type": environ["CONTENT_TYPE"]} if environ.get("CONTENT_TYPE") else {}
    try:
        upstream = requests.request(environ.get("REQUEST_METHOD", "GET"), url, data=data, headers=headers,
                                    timeout=30)
    except requests.RequestException:
        body = json.dumps({"error": {"code": "unavailable", "message": "The Storage emulator is not reachable."}})
        return _answer(start_response, "503 Service Unavailable", body.encode(), "application/json")
    reason = upstream.reason or "Status"
    return _answer(start_response, f"{upstream.status_code} {reason}", upstream.content,
                   upstream.headers.get("Content-Type", "application/octet-stream"))


def build_app(source: Path = ROOT / "main.py"):
    names = [*HTTP_FUNCTIONS, STORAGE_TRIGGER]
    apps = {name: create_app(name, str(source)) for name in names}
    missing = json.dumps({"error": {"code": "not_found",
                                    "message": f"No function here; try one of: {', '.join(names)}."}}).encode()
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
        elif name == STORAGE_PREFIX:
            return _storage_proxy(environ, start_response, rest)
        app = apps.get(name)
        if app is None:
            if prefix:
                return _answer(start_response, "404 Not Found", missing, "application/json")
            return page(environ, start_response)
        environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + prefix + "/" + name
        environ["PATH_INFO"] = "/" + rest
        return app(environ, start_response)

    return dispatch


app = build_app()
