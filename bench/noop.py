"""The HTTP ceilings: functions-framework functions that do the least there is.

noop answers 201 with a small JSON body, like create_session, without touching
auth, parsing or the database: the ceiling of any function served this way.

db_ceiling is the least a database-backed function can do: it parses nothing,
takes a pooled connection from the product's own engine (shared.core.db.get_engine, the
same settings and pool), runs the one-INSERT ceiling statement of the database
benchmark (bench/seed_style.py: INSERT INTO sessions ... nextval(), prepared, no
BEGIN/COMMIT) and answers 201 with the new session's id as JSON. It is the honest
ceiling for create_session over HTTP: what is left between the two is what the
product adds (credentials, validation, its larger statement, its answer).

Both are served by bench/noop_server.py exactly as devtools/serve.py serves the
product (functions-framework's create_app under gunicorn with the same workers
and threads).
"""

import json

import functions_framework

from bench.seed_style import ceiling_insert
from shared.core.db import get_engine

_BODY = '{"sessionId": "00000000-0000-0000-0000-000000000000", "visitorNumber": 1}'
_HEADERS = {"Content-Type": "application/json"}


@functions_framework.http
def noop(request):
    return _BODY, 201, _HEADERS


@functions_framework.http
def db_ceiling(request):
    return json.dumps({"sessionId": ceiling_insert(get_engine())}), 201, _HEADERS
