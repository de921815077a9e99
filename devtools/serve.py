"""Every function of main.py on one port, each at /<function_name>.

Each mount is the real functions-framework app for that target (create_app),
so a request is handled exactly as `functions-framework --target NAME` would
handle it; this module only dispatches by the first path segment, the way
Cloud Functions names its URLs. Run it with gunicorn: `devtools.serve:app`.
"""

from __future__ import annotations

import json
from pathlib import Path

from functions_framework import create_app

ROOT = Path(__file__).resolve().parent.parent
HTTP_FUNCTIONS = ("create_session", "submit_response", "get_visitor", "register")
EVENT_FUNCTIONS = ("on_upload_finalized",)


def build_app(source: Path = ROOT / "main.py"):
    import main

    names = [name for name in HTTP_FUNCTIONS + EVENT_FUNCTIONS if hasattr(main, name)]
    apps = {name: create_app(name, str(source)) for name in names}
    missing = json.dumps({"error": {"code": "not_found",
                                    "message": f"No function here; try one of: {', '.join(names)}."}}).encode()

    def dispatch(environ, start_response):
        # /create_session and /create_session/... both reach the function at "/",
        # as on Cloud Functions (no redirect to a trailing slash).
        name, _, rest = environ.get("PATH_INFO", "").lstrip("/").partition("/")
        app = apps.get(name)
        if app is None:
            start_response("404 Not Found", [("Content-Type", "application/json"),
                                             ("Content-Length", str(len(missing)))])
            return [missing]
        environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + "/" + name
        environ["PATH_INFO"] = "/" + rest
        return app(environ, start_response)

    return dispatch


app = build_app()
