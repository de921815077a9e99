"""Prolific completions made from the server (SPEC §14.5, docs/design/completion.md): one attempt
by complete_session before it answers, then retries by the deliveries task with growing waits,
until delivered or failed.

The call is Prolific's "Approve or reject a submission":
POST {PROLIFIC_API_URL}/api/v1/submissions/<id>/transition/ with {"action": "COMPLETE",
"completion_code": <a code whose actor is the researcher>} and `Authorization: Token <token>`
(https://docs.prolific.com/api-reference/submissions/transition-submission). Prolific documents
it as idempotent ("if you make the same request twice, the second request will be ignored"), so
an attempt whose answer was lost may be made again. It does not document the body of the 4xx it
answers for a submission that is no longer active; one that says the submission is already
completed, approved or awaiting review counts as delivered (ALREADY_DONE below).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from shared.core import config
from shared.core.db import statement, transaction
from shared.core.logs import get_logger

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

log = get_logger("deliveries")

# complete_session's one attempt: at most 3 s in all before it answers (on Cloud Run, work after
# the answer gets no CPU): 1 s to connect, 2 s for the answer.
FIRST_ATTEMPT_TIMEOUT = (1.0, 2.0)
# The deliveries task's attempts: Prolific is given longer.
RETRY_TIMEOUT = (5.0, 15.0)
# Growing waits between attempts: 30 s after the first failure (the first retry within a minute),
# doubling, at most an hour; transient failures for 7 days make a delivery failed.
FIRST_WAIT_SECONDS = 30
LONGEST_WAIT_SECONDS = 3600
GIVE_UP_AFTER = timedelta(days=7)
# A run of the deliveries task stops taking new deliveries after this long, well within the
# minute between two runs of its Cloud Scheduler job.
RUN_BUDGET_SECONDS = 45.0
# A claimed delivery is not due again for this long: longer than any one call, so that a run
# that dies during its call leaves the delivery to a later run, and only then.
LEASE_SECONDS = 120
# A 4xx whose body says the submission is no longer waiting for this completion.
ALREADY_DONE = re.compile(r"already|awaiting[ _-]?review|approved", re.IGNORECASE)
# The HTTP statuses after which the same call may succeed later.
TRANSIENT_STATUSES = (401, 403, 408, 429)


@dataclass(frozen=True)
class Prolific:
    """Where and as whom deliveries are made (PROLIFIC_API_URL, PROLIFIC_API_TOKEN)."""

    url: str
    token: str = field(repr=False)  # never printed, never logged

    @classmethod
    def from_settings(cls) -> Prolific | None:
        """None when PROLIFIC_API_TOKEN is not set: nothing is delivered."""
        token = config.prolific_api_token()
        return cls(config.prolific_api_url(), token) if token else None


@dataclass(frozen=True)
class Attempt:
    """What one call gave: `delivered`, `retry` or `failed`, with the reason of a failure."""

    result: str
    error: str | None = None
    token_refused: bool = False


def transition(prolific: Prolific, submission_id: str, code: str, timeout: tuple[float, float]) -> Attempt:
    """One call of Prolific's transition endpoint, judged as SPEC §14.5 says."""
    import requests

    url = f"{prolific.url}/api/v1/submissions/{quote(submission_id, safe='')}/transition/"
    try:
        answer = requests.post(
            url,
            json={"action": "COMPLETE", "completion_code": code},
            headers={"Authorization": f"Token {prolific.token}"},
            timeout=timeout,
            allow_redirects=False,
        )
    except requests.RequestException as error:
        return Attempt("retry", f"no answer from Prolific ({type(error).__name__})")
    status = answer.status_code
    reason = f"HTTP {status}: {answer.text[:300]}"
    if 200 <= status < 300:
        return Attempt("delivered")
    if status in TRANSIENT_STATUSES or status >= 500:
        return Attempt("retry", reason, token_refused=status in (401, 403))
    if 400 <= status < 500 and ALREADY_DONE.search(answer.text):
        return Attempt("delivered", f"Prolific answered that it was done: {reason}")
    return Attempt("failed", reason)


def wait_seconds(attempts: int) -> int:
    """How long after its `attempts`-th failed attempt a delivery is tried again."""
    return min(FIRST_WAIT_SECONDS * 2 ** min(max(attempts - 1, 0), 16), LONGEST_WAIT_SECONDS)


def attempt_first(engine: Engine, prolific: Prolific, session_id: uuid.UUID) -> str | None:
    """complete_session's one attempt at its delivery (at most FIRST_ATTEMPT_TIMEOUT); the result,
    or None when the deliveries task is making it. Never raises for Prolific's failures."""
    try:
        with transaction(engine) as conn:
            row = conn.execute(
                statement("deliveries/claim_session"), {"session_id": str(session_id), "lease_seconds": LEASE_SECONDS}
            ).first()
        if row is None:
            return None
        return _attempt(engine, prolific, row, FIRST_ATTEMPT_TIMEOUT)
    except Exception as error:  # the completion is committed: its answer stands, the task retries
        log.warning(
            "Prolific delivery not attempted now (%s); the deliveries task will",
            type(error).__name__,
            extra={"fields": {"sessionId": str(session_id)}},
        )
        return None


@dataclass
class Run:
    """What one run of the deliveries task did."""

    delivered: int = 0
    retrying: int = 0
    failed: int = 0
    forgotten: int = 0  # deliveries of erased sessions deleted once done
    token_set: bool = True

    def to_json(self) -> dict[str, Any]:
        return {
            "delivered": self.delivered,
            "retrying": self.retrying,
            "failed": self.failed,
            "forgotten": self.forgotten,
        }


def deliver_due(engine: Engine, prolific: Prolific | None, budget_seconds: float = RUN_BUDGET_SECONDS) -> Run:
    """The deliveries task: attempt every delivery that is due, each claimed (FOR UPDATE SKIP
    LOCKED, then a lease) before its call; then delete the finished deliveries of erased sessions."""
    import time

    done = Run()
    if prolific is None:
        done.token_set = False
        _warn_if_waiting(engine)
    else:
        deadline = time.monotonic() + budget_seconds
        while time.monotonic() < deadline:
            with transaction(engine) as conn:
                row = conn.execute(statement("deliveries/claim_due"), {"lease_seconds": LEASE_SECONDS}).first()
            if row is None:
                break
            result = _attempt(engine, prolific, row, RETRY_TIMEOUT)
            done.delivered += result == "delivered"
            done.retrying += result == "retry"
            done.failed += result == "failed"
    done.forgotten = forget_erased(engine)
    return done


def forget_erased(engine: Engine) -> int:
    """Delete the deliveries of erased sessions that are delivered or failed now."""
    with transaction(engine) as conn:
        return conn.execute(statement("deliveries/forget_erased")).rowcount


def _warn_if_waiting(engine: Engine) -> None:
    with transaction(engine) as conn:
        pending = conn.execute(statement("deliveries/counts")).one().pending
    if pending:
        log.warning(
            "Prolific deliveries are waiting and PROLIFIC_API_TOKEN is not set: set it to deliver them",
            extra={"fields": {"pending": pending}},
        )


def _attempt(engine: Engine, prolific: Prolific, row, timeout: tuple[float, float]) -> str:
    """One attempt at a claimed delivery (no connection held during the call), recorded on its row."""
    attempt = transition(prolific, row.submission_id, row.completion_code, timeout)
    attempts = row.attempts + 1
    result, error = attempt.result, attempt.error
    fields = {"sessionId": str(row.session_id), "experimentId": row.experiment_id, "attempts": attempts}
    if result == "retry" and _too_old(row.created_at, row.now):
        result, error = "failed", f"gave up after {GIVE_UP_AFTER.days} days; last: {error}"
    if attempt.token_refused:
        # An alert (severity ERROR): every delivery waits until the token is replaced.
        log.error(
            "ALERT: Prolific refused PROLIFIC_API_TOKEN (%s): the token is wrong or was deleted; "
            "replace the secret, deliveries are kept and retried",
            _status(error),
            extra={"fields": fields},
        )
    elif result == "retry":
        log.warning("Prolific delivery to be retried: %s", _status(error), extra={"fields": fields})
    elif result == "failed":
        log.error("Prolific delivery failed: %s", _status(error), extra={"fields": fields})
    else:
        log.info("Prolific delivery delivered", extra={"fields": fields})
    with transaction(engine) as conn:
        conn.execute(
            statement("deliveries/record"),
            {
                "session_id": str(row.session_id),
                "result": result,
                "wait_seconds": wait_seconds(attempts),
                "error": error,
            },
        )
    return result


def _status(error: str | None) -> str:
    """The reason without Prolific's text (which may quote the submission): its status, or the error's kind."""
    if error is None:
        return ""
    return error.split(":", 1)[0] if error.startswith(("HTTP", "gave up")) else error


def _too_old(created_at: datetime, now: datetime) -> bool:
    return now - created_at >= GIVE_UP_AFTER


# `python -m shared.deliveries` ------------------------------------------------------------------


def listing(engine: Engine) -> list:
    with transaction(engine) as conn:
        return list(conn.execute(statement("deliveries/list")).all())


def counts(engine: Engine):
    with transaction(engine) as conn:
        return conn.execute(statement("deliveries/counts")).one()


def make_due(engine: Engine, failed: bool) -> int:
    """Every pending delivery (and with `failed` every failed one) due now; how many."""
    with transaction(engine) as conn:
        return conn.execute(statement("deliveries/retry"), {"failed": failed}).rowcount
