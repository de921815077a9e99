"""register: POST; a signed-up user's record, and the claim of its guest's data.

Needs a non-anonymous Firebase ID token (Authorization: Bearer ...); with
X-Guest-Key, that guest's sessions and responses move to the user. Answers 201
when this call created the users row, 200 when it already existed (including
every repeated call, which claims nothing more: migratedSessions 0).
"""

import functions_framework

from shared import registration
from shared.auth import guest_from_header, user_from_header
from shared.db import get_engine
from shared.http import endpoint
from shared.models import Registration, parse


@functions_framework.http
@endpoint("POST")
def register(request, body):
    user = registration.require_registered(user_from_header(request))
    guest = guest_from_header(request)
    details = parse(Registration, body)
    registered = registration.register(get_engine(), user, guest, details.displayName)
    return (201 if registered.created else 200), registered.to_json()
