"""get_visitor: GET; the caller's visitor number and sessions."""

from shared.core.db import get_engine
from shared.visitors import sessions
from shared.web.auth import identify


def get_visitor(request, _body):
    return 200, sessions.get_visitor(get_engine(), identify(request))
