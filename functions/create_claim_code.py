"""create_claim_code: POST; a code that claims this guest or anonymous account from another device.

By a guest (X-Guest-Key) or an anonymous Firebase account (its ID token). Answers
201 {claimCode, expiresAt}; a new code replaces the visitor's earlier one. A
signed-in (non-anonymous) account is 403: it signs in on the other device instead.
"""

from shared.core.db import get_engine
from shared.web import models
from shared.web.auth import identify


def create_claim_code(request, body):
    from shared.visitors import claim_codes  # on first call, not by import main (functions/__init__.py)

    # fresh: the code moves the caller's data for good, so no revoked token may make one.
    caller = identify(request, fresh=True)
    models.parse(models.NewClaimCode, body)
    return 201, claim_codes.create_claim_code(get_engine(), caller).to_json()
