"""The HTTP ceiling: a functions-framework function that does nothing.

It answers 201 with a small JSON body, like create_session, without touching
auth, parsing or the database. Served by bench/noop_server.py exactly as
devtools/serve.py serves the product (functions-framework's create_app under
gunicorn with the same workers and threads).
"""

import functions_framework

_BODY = '{"sessionId": "00000000-0000-0000-0000-000000000000", "visitorNumber": 1}'


@functions_framework.http
def noop(request):
    return _BODY, 201, {"Content-Type": "application/json"}
