"""get_visitor: GET; the caller's visitor number and sessions."""

import functions_framework

from shared import visitors
from shared.auth import identify
from shared.db import get_engine
from shared.http import endpoint


@functions_framework.http
@endpoint("GET", app_check=True)
def get_visitor(request, _body):
    return 200, visitors.get_visitor(get_engine(), identify(request))
