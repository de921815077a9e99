"""register: POST; a signed-up user's record, and the claim of its guest's data.

Needs a non-anonymous Firebase ID token (Authorization: Bearer ...). At most one
visitor to claim: X-Guest-Key (a guest), X-Anonymous-Token (the ID token of a
Firebase anonymous account) or the body's claimCode (from create_claim_code on
another device); its sessions and responses move to the user. Answers 201 when
this call created the users row, 200 when it already existed (including every
repeated call, which claims nothing more: migratedSessions 0).
"""

from shared.core.db import get_engine
from shared.core.errors import InvalidArgument
from shared.web import models
from shared.web.auth import anonymous_from_header, guest_from_header, user_from_header


def register(request, body):
    from shared.visitors import registration  # on first call, not by import main (functions/__init__.py)
    from shared.visitors.claim_codes import parse_code

    # fresh: a claim moves data for good, so a token revoked a moment ago must not make one.
    user = registration.require_registered(user_from_header(request, fresh=True))
    guest = guest_from_header(request)
    details = models.parse(models.Registration, body)
    anonymous = anonymous_from_header(request)
    code = parse_code(details.claimCode) if details.claimCode is not None else None
    claims = [claim for claim in (guest, anonymous, code) if claim is not None]
    if len(claims) > 1:
        raise InvalidArgument(
            "Claim one visitor at a time: send X-Guest-Key, X-Anonymous-Token or claimCode, not more than one."
        )
    registered = registration.register(get_engine(), user, claims[0] if claims else None, details.displayName)
    return (201 if registered.created else 200), registered.to_json()
