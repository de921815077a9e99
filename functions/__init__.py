"""FUNCTIONS: the one list of deployed functions, one row each, which main.py exports,
devtools/serve.py serves, devtools/deploy.py deploys and the contract tests check; each
functions/<name>.py holds only its handler (docs/adding-a-function.md). Standard library only,
so the rows can be read without loading the functions."""

from __future__ import annotations

from dataclasses import dataclass

# Who a function runs as (devtools/deploy.py): its service account, its database user and the
# secret with that user's password.
#   functions   - visitors-functions: the database user of visitor_functions (no DELETE)
#   erasure     - visitors-erasure: a member of visitor_erasure (sql/003_erasure.sql), and the bucket
#   maintenance - visitors-maintenance: erases too (retention, resuming withdrawals)
#   uploads     - visitors-uploads: the storage trigger's
IDENTITIES = ("functions", "erasure", "maintenance", "uploads")
# Who calls it. The page's visitors; researchers, with their ID tokens; Cloud
# Scheduler only (deployed --no-allow-unauthenticated); Cloud Storage's events.
CALLERS = ("visitors", "researchers", "scheduler", "storage")
# The `make deploy` variable that caps a function's instances (README, Sizing): MAX_INSTANCES for
# those a visit calls over and over, RIGHTS_MAX_INSTANCES for those called rarely (once in a
# visitor's life, by researchers, by the scheduler), TRIGGER_MAX_INSTANCES for the trigger.
INSTANCE_CAPS = ("MAX_INSTANCES", "RIGHTS_MAX_INSTANCES", "TRIGGER_MAX_INSTANCES")
KINDS = ("http", "storage")


@dataclass(frozen=True)
class Function:
    """One deployed function. `name` is its entry point, its deployed name, its URL's last
    segment (/<name>, /api/<name>) and its module's: functions/<name>.py defines `name`, a
    handler `(request, body) -> (status, dict) | Streamed` for an HTTP function
    (shared.web.http.endpoint), `(cloud_event) -> None` for the storage trigger."""

    name: str
    # the HTTP methods it answers (and OPTIONS), as its Allow header lists them: "GET", "POST", or
    # "GET, POST" (configure_experiment reads and writes); None for the storage trigger
    method: str | None
    app_check: bool = False  # checks X-Firebase-AppCheck when APP_CHECK is on
    callers: str = "visitors"  # one of CALLERS
    identity: str = "functions"  # one of IDENTITIES
    max_instances: str = "MAX_INSTANCES"  # one of INSTANCE_CAPS
    timeout: str = "60s"  # --timeout
    guest_limit: bool = False  # gets GUEST_LIMIT_PER_HOUR and the key client addresses are hashed with
    upload_tickets: bool = False  # signs or verifies upload tickets: gets UPLOAD_TICKET_KEY and UPLOAD_TICKETS*
    participant_key: bool = False  # hashes study participants for the ledger: gets PARTICIPANT_KEY
    prolific: bool = False  # completes Prolific submissions (SPEC §14.5): gets PROLIFIC_API_TOKEN, PROLIFIC_API_URL
    kind: str = "http"  # one of KINDS: "storage" is a CloudEvent of the uploads bucket (--retry)

    def __post_init__(self) -> None:
        problems = [
            f"{field}={value!r} is not one of {allowed}"
            for field, value, allowed in (
                ("callers", self.callers, CALLERS),
                ("identity", self.identity, IDENTITIES),
                ("max_instances", self.max_instances, INSTANCE_CAPS),
                ("kind", self.kind, KINDS),
            )
            if value not in allowed
        ]
        if (self.kind == "http") != (self.method in ("GET", "POST", "GET, POST")):
            problems.append("an HTTP function answers GET or POST; the storage trigger has no method")
        if (self.kind == "storage") != (self.callers == "storage"):
            problems.append("the storage trigger, and only it, is called by storage events")
        if self.app_check and self.callers != "visitors":
            problems.append("an App Check token comes from the visitors' page only")
        if problems:
            raise ValueError(f"functions.{self.name}: " + "; ".join(problems))

    @property
    def methods(self) -> tuple[str, ...]:
        """The HTTP methods it answers besides OPTIONS: ("GET",), ("POST",) or ("GET", "POST")."""
        return tuple(self.method.split(", ")) if self.method else ()

    @property
    def module(self) -> str:
        return f"functions.{self.name}"

    @property
    def private(self) -> bool:
        """Deployed --no-allow-unauthenticated: Cloud Run lets only its invoker's account in."""
        return self.callers == "scheduler"

    def entry_point(self):
        """What main.py exports under `name`: the module's handler, served as the row says
        (functions-framework's signature type, and for HTTP shared.web.http.endpoint with
        the row's method and App Check)."""
        import importlib

        import functions_framework

        handler = getattr(importlib.import_module(self.module), self.name)
        if self.kind == "storage":
            return functions_framework.cloud_event(handler)
        from shared.web.http import endpoint

        assert self.methods  # an HTTP row has them (__post_init__)
        return functions_framework.http(endpoint(*self.methods, app_check=self.app_check)(handler))


# In the order main.py exports them and `make deploy` deploys them: the HTTP functions, then the
# storage trigger (which needs nothing of theirs).
FUNCTIONS = (
    # a visit calls these over and over.
    Function("create_session", "POST", app_check=True, guest_limit=True, participant_key=True),
    Function("submit_response", "POST", app_check=True),
    # once per session, at its end (SPEC §14.4), with the capped instances of the rarely called
    # ones: a few short transactions each, and a Prolific call (§14.5) made holding no connection.
    Function(
        "complete_session",
        "POST",
        app_check=True,
        max_instances="RIGHTS_MAX_INSTANCES",
        participant_key=True,
        prolific=True,
    ),
    Function("get_visitor", "GET", app_check=True),
    Function("register", "POST", app_check=True),
    # once per uploaded file, one short read: the capped instances of the rarely called ones
    # serve it (MAX_INSTANCES' would take the default plan over its connection budget).
    Function("create_upload_ticket", "POST", app_check=True, max_instances="RIGHTS_MAX_INSTANCES", upload_tickets=True),
    # participants' rights: once in a visitor's life; the erasing ones with their own identity.
    Function("delete_my_data", "POST", app_check=True, identity="erasure", max_instances="RIGHTS_MAX_INSTANCES"),
    Function("erase_visitor", "POST", callers="researchers", identity="erasure", max_instances="RIGHTS_MAX_INSTANCES"),
    Function("export_my_data", "GET", app_check=True, max_instances="RIGHTS_MAX_INSTANCES"),
    # once per move to another device.
    Function("create_claim_code", "POST", app_check=True, max_instances="RIGHTS_MAX_INSTANCES"),
    # few callers; an export streams for as long as its download takes, up to the longest
    # an HTTP function may run, 60 minutes (https://cloud.google.com/functions/docs/configuring/timeout).
    Function("get_study_stats", "GET", callers="researchers", max_instances="RIGHTS_MAX_INSTANCES"),
    Function("export_data", "GET", callers="researchers", max_instances="RIGHTS_MAX_INSTANCES", timeout="3600s"),
    # a study's configuration (GET reads it, POST sets it), and a researcher's exclusion of a session.
    Function("configure_experiment", "GET, POST", callers="researchers", max_instances="RIGHTS_MAX_INSTANCES"),
    Function("exclude_session", "POST", callers="researchers", max_instances="RIGHTS_MAX_INSTANCES"),
    # the researchers' trail: who exported, erased or configured what, and when.
    Function("get_researcher_actions", "GET", callers="researchers", max_instances="RIGHTS_MAX_INSTANCES"),
    # Cloud Scheduler's, private; a run erases up to shared.ops.maintenance.RETENTION_BATCH
    # guests, and the scheduler waits as long for its answer (--attempt-deadline).
    Function(
        "run_maintenance",
        "POST",
        callers="scheduler",
        identity="maintenance",
        max_instances="RIGHTS_MAX_INSTANCES",
        timeout="900s",
        prolific=True,
    ),
    # google.cloud.storage.object.v1.finalized of the uploads bucket, retried.
    Function(
        "on_upload_finalized",
        None,
        kind="storage",
        callers="storage",
        identity="uploads",
        max_instances="TRIGGER_MAX_INSTANCES",
        timeout="120s",
        upload_tickets=True,
    ),
)

NAMES = tuple(function.name for function in FUNCTIONS)
HTTP = tuple(function for function in FUNCTIONS if function.kind == "http")
BY_NAME = {function.name: function for function in FUNCTIONS}
assert len(BY_NAME) == len(FUNCTIONS), "two rows with one name"
