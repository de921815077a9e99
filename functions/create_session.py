"""create_session: POST; the caller's session, and its visitor number on first sight."""

import functions_framework

from shared import models, visitors
from shared.auth import identify
from shared.db import get_engine
from shared.guest_limit import Window
from shared.http import endpoint


@functions_framework.http
@endpoint("POST", app_check=True)
def create_session(request, body):
    caller = identify(request)
    new_session = models.parse(models.NewSession, body)
    created, session = visitors.create_session(get_engine(), caller, new_session,
                                               Window.of_request(request, caller))
    return (201 if created else 200), session.to_json()
