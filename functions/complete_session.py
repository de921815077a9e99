"""complete_session: POST; one of the caller's sessions completed (SPEC §14.4), once the server
holds its responses, and a Prolific completion from the server attempted once (§14.5)."""

from shared.core.db import get_engine
from shared.web.auth import identify


def complete_session(request, body):
    from shared.studies import completion, deliveries  # on first call, not by import main (functions/__init__.py)

    caller = identify(request)
    asked = completion.parse(body)
    prolific = deliveries.Prolific.from_settings()
    done = completion.complete_session(get_engine(), caller, asked, prolific_token=prolific is not None)
    if done.delivery is not None and prolific is not None:
        # Whatever Prolific answers, the answer below is the same: a delivery not made now is
        # retried by the deliveries task (run_maintenance?task=deliveries, every minute).
        deliveries.attempt_first(get_engine(), prolific, done.delivery)
    return (201 if done.created else 200), done.body
