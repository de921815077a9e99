"""bench/noop.py's functions served at /noop and /db_ceiling through the same kind of
path dispatch as devtools/serve.py (one functions-framework app per function). Run
with gunicorn: `bench.noop_server:app`."""

from pathlib import Path

from functions_framework import create_app

_SOURCE = str(Path(__file__).with_name("noop.py"))
_apps = {name: create_app(name, _SOURCE) for name in ("noop", "db_ceiling")}


def app(environ, start_response):
    name, _, rest = environ.get("PATH_INFO", "").lstrip("/").partition("/")
    target = _apps.get(name)
    if target is None:
        start_response("404 Not Found", [("Content-Length", "0")])
        return [b""]
    environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + "/" + name
    environ["PATH_INFO"] = "/" + rest
    return target(environ, start_response)
