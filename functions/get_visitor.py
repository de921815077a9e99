"""get_visitor: GET; the caller's visitor number and sessions."""

import functions_framework

from shared.visitors import sessions
from shared.web.auth import identify
from shared.core.db import get_engine
from shared.web.http import endpoint


@functions_framework.http
@endpoint("GET", app_check=True)
def get_visitor(request, _body):
    return 200, sessions.get_visitor(get_engine(), identify(request))
