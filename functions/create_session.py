"""create_session: POST; the caller's session, and its visitor number on first sight."""

from shared.core import config
from shared.core.db import get_engine
from shared.visitors import sessions
from shared.visitors.guest_limit import Window
from shared.web import models
from shared.web.auth import identify


def create_session(request, body):
    caller = identify(request)
    new_session = models.parse(models.NewSession, body)
    created, session = sessions.create_session(
        get_engine(), caller, new_session, Window.of_request(request, caller), config.session_limit_per_hour()
    )
    return (201 if created else 200), session.to_json()
