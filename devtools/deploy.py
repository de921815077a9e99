"""`make deploy`: the commands that put this folder on Google Cloud, in order (docs/deployment.md):
migrations, one `gcloud functions deploy` per row of functions.FUNCTIONS, the scheduler's job, and
`firebase deploy` of the rules and Hosting. Every problem is printed before anything runs; DRY_RUN=1
prints the exact commands; passwords never appear in a command."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from functions import FUNCTIONS, Function
from shared.core import config

ROOT = Path(__file__).resolve().parent.parent
FINALIZED = "google.cloud.storage.object.v1.finalized"
RUNTIME = "python311"
REQUIRED = ("PROJECT", "REGION", "BUCKET", "INSTANCE_CONNECTION_NAME")


@dataclass(frozen=True)
class Settings:
    project: str
    region: str
    bucket: str
    instance: str
    db_name: str
    db_user: str
    uploads_db_user: str
    erasure_db_user: str
    db_iam_auth: bool
    db_pass_secret: str
    erasure_db_pass_secret: str
    migrate_db_user: str
    migrate_db_pass_secret: str
    service_account: str
    uploads_service_account: str
    erasure_service_account: str
    maintenance_service_account: str
    maintenance_db_user: str
    scheduler_service_account: str
    maintenance_schedule: str
    audit_schedule: str
    guest_limit_per_hour: str
    session_limit_per_hour: str
    guest_limit_key_secret: str
    upload_tickets: str
    upload_ticket_ttl_seconds: str
    upload_ticket_key_secret: str
    participant_key_secret: str
    prolific_api_token_secret: str | None
    prolific_api_url: str | None
    deliveries_schedule: str
    guest_retention_days: str | None
    trigger_service_account: str
    trigger_location: str | None
    allowed_origins: str
    max_instances: int
    rights_max_instances: int
    trigger_max_instances: int
    concurrency: int
    pool_size: int
    max_overflow: int
    max_connections: int
    app_check: str = "off"

    @classmethod
    def read(cls, env: dict[str, str]) -> tuple[Settings | None, list[str]]:
        """The settings, and every problem among them (one line each). A bad optional value
        is noted and its default used; without a required one there are no settings."""
        problems: list[str] = []

        def get(name: str, default: str | None = None) -> str:
            value = env.get(name, "").strip()
            if value:
                return value
            if default is None:
                problems.append(f"{name} is not set: make deploy {name}=... (see README, Deployment)")
                return ""
            return default

        def number(name: str, default: int, minimum: int = 1) -> int:
            raw = get(name, str(default))
            if not raw.isdigit() or int(raw) < minimum:
                problems.append(f"{name}={raw!r} is not a {'positive ' if minimum else ''}whole number")
                return default
            return int(raw)

        def boolean(name: str) -> bool:
            raw = get(name, "false").lower()
            if raw not in ("1", "true", "yes", "0", "false", "no"):
                problems.append(f"{name}={raw!r} is not a boolean: set it to true or false")
            return raw in ("1", "true", "yes")

        project = get("PROJECT")
        region = get("REGION")
        bucket = get("BUCKET").removeprefix("gs://").rstrip("/")
        instance = get("INSTANCE_CONNECTION_NAME")
        # One identity per job (README, IAM): the HTTP functions, the storage trigger's
        # code, and Eventarc's trigger that invokes it.
        service_account = get("SERVICE_ACCOUNT", f"visitors-functions@{project}.iam.gserviceaccount.com")
        uploads_account = get("UPLOADS_SERVICE_ACCOUNT", f"visitors-uploads@{project}.iam.gserviceaccount.com")
        erasure_account = get("ERASURE_SERVICE_ACCOUNT", f"visitors-erasure@{project}.iam.gserviceaccount.com")
        # run_maintenance's own identity, and the scheduler's that invokes it.
        maintenance_account = get(
            "MAINTENANCE_SERVICE_ACCOUNT", f"visitors-maintenance@{project}.iam.gserviceaccount.com"
        )
        iam_auth = boolean("DB_IAM_AUTH")
        # With IAM database auth each service account is its own database user (its
        # email without ".gserviceaccount.com"); with a password both share DB_USER.
        db_user = get(
            "DB_USER", service_account.removesuffix(".gserviceaccount.com") if iam_auth else "visitors-functions"
        )
        settings = cls(
            project=project,
            region=region,
            bucket=bucket,
            instance=instance,
            db_name=get("DB_NAME", "visitors"),
            db_user=db_user,
            uploads_db_user=uploads_account.removesuffix(".gserviceaccount.com") if iam_auth else db_user,
            # The erasing functions' user is never the others': only it may DELETE.
            erasure_db_user=(
                erasure_account.removesuffix(".gserviceaccount.com")
                if iam_auth
                else get("ERASURE_DB_USER", "visitors-erasure")
            ),
            db_iam_auth=iam_auth,
            db_pass_secret=get("DB_PASS_SECRET", "visitors-db-password"),
            erasure_db_pass_secret=get("ERASURE_DB_PASS_SECRET", "visitors-db-erasure-password"),
            migrate_db_user=get("MIGRATE_DB_USER", "postgres"),
            migrate_db_pass_secret=get("MIGRATE_DB_PASS_SECRET", "visitors-db-migrator-password"),
            service_account=service_account,
            uploads_service_account=uploads_account,
            erasure_service_account=erasure_account,
            maintenance_service_account=maintenance_account,
            # It erases (retention, pending withdrawals): the erasure user, or its own IAM user.
            maintenance_db_user=(
                maintenance_account.removesuffix(".gserviceaccount.com")
                if iam_auth
                else get("ERASURE_DB_USER", "visitors-erasure")
            ),
            scheduler_service_account=get(
                "SCHEDULER_SERVICE_ACCOUNT", f"visitors-scheduler@{project}.iam.gserviceaccount.com"
            ),
            maintenance_schedule=get("MAINTENANCE_SCHEDULE", "17 * * * *"),
            audit_schedule=get("AUDIT_SCHEDULE", "43 3 * * *"),
            guest_limit_per_hour=str(number("GUEST_LIMIT_PER_HOUR", 200, minimum=0)),
            session_limit_per_hour=str(number("SESSION_LIMIT_PER_HOUR", 300, minimum=0)),
            guest_limit_key_secret=get("GUEST_LIMIT_KEY_SECRET", "visitors-guest-limit-key"),
            # Upload tickets (docs/design/upload-tickets.md): the trigger's mode, their lifetime, and
            # the secret they are signed with; the modes are checked with the functions' settings.
            upload_tickets=get("UPLOAD_TICKETS", "enforce").lower(),
            upload_ticket_ttl_seconds=str(number("UPLOAD_TICKET_TTL_SECONDS", 3600)),
            upload_ticket_key_secret=get("UPLOAD_TICKET_KEY_SECRET", "visitors-upload-ticket-key"),
            # Studies (SPEC §14): the key the participation ledger hashes participants with; and,
            # for Prolific completion from the server (§14.5), the secret holding the researcher's
            # API token - none by default: then no function gets a token and no deliveries job is made.
            participant_key_secret=get("PARTICIPANT_KEY_SECRET", "visitors-participant-key"),
            prolific_api_token_secret=env.get("PROLIFIC_API_TOKEN_SECRET", "").strip() or None,
            prolific_api_url=env.get("PROLIFIC_API_URL", "").strip() or None,
            deliveries_schedule=get("DELIVERIES_SCHEDULE", "* * * * *"),
            guest_retention_days=(
                str(number("GUEST_RETENTION_DAYS", 30)) if env.get("GUEST_RETENTION_DAYS", "").strip() else None
            ),
            trigger_service_account=get(
                "TRIGGER_SERVICE_ACCOUNT", f"visitors-events@{project}.iam.gserviceaccount.com"
            ),
            trigger_location=env.get("TRIGGER_LOCATION", "").strip().lower() or None,
            allowed_origins=get("ALLOWED_ORIGINS", f"https://{project}.web.app,https://{project}.firebaseapp.com"),
            max_instances=number("MAX_INSTANCES", 5),
            rights_max_instances=number("RIGHTS_MAX_INSTANCES", 1),
            trigger_max_instances=number("TRIGGER_MAX_INSTANCES", 5),
            concurrency=number("CONCURRENCY", 8),
            pool_size=number("DB_POOL_SIZE", 3),
            max_overflow=number("DB_MAX_OVERFLOW", 0, minimum=0),
            max_connections=number("DB_MAX_CONNECTIONS", 100),
            # The visitor-facing functions' APP_CHECK (README, Abuse limits); checked with the
            # functions' settings (functions_problems).
            app_check=get("APP_CHECK", "off").lower(),
        )
        if not env.get("TRIGGER_LOCATION", "").strip():
            # Eventarc: a Cloud Storage trigger lives in its bucket's location
            # (https://cloud.google.com/eventarc/docs/understand-locations), which the bucket's
            # name does not tell: an old PROJECT.appspot.com bucket is often in the US multi-region,
            # a PROJECT.firebasestorage.app one wherever the project's default location is.
            bucket = env.get("BUCKET", "").strip() or "BUCKET"
            problems.append(
                f"TRIGGER_LOCATION is not set: the storage trigger must be in the bucket's location; "
                f"set it to `gcloud storage buckets describe gs://{bucket} --format='value(location)'`, "
                "lowercased (e.g. us, eu, europe-west1)"
            )
        if env.get("APP_CHECK_JWKS_URL", "").strip():
            problems.append(
                "APP_CHECK_JWKS_URL is for tests only: unset it to deploy "
                "(deployed functions fetch Google's App Check keys)"
            )
        return (settings if all(env.get(name, "").strip() for name in REQUIRED) else None), problems

    def instances_of(self, function: Function) -> int:
        """--max-instances of a function: the value of the variable its row names (those called
        rarely RIGHTS_MAX_INSTANCES, those a visit calls over and over MAX_INSTANCES, the trigger
        TRIGGER_MAX_INSTANCES)."""
        return {
            "MAX_INSTANCES": self.max_instances,
            "RIGHTS_MAX_INSTANCES": self.rights_max_instances,
            "TRIGGER_MAX_INSTANCES": self.trigger_max_instances,
        }[function.max_instances]

    def connections_at_most(self) -> int:
        """Database connections all instances of all functions may hold at once (docs/deployment.md,
        Sizing): an HTTP function's instance a pool of DB_POOL_SIZE + DB_MAX_OVERFLOW (the
        researchers' functions at most RESEARCHER_POOL), the trigger's one event at a time per
        instance with a pool of 1."""
        return sum(self.instances_of(function) * sum(self.pool_of(function)) for function in FUNCTIONS)

    def pool_of(self, function: Function) -> tuple[int, int]:
        """(DB_POOL_SIZE, DB_MAX_OVERFLOW) of one function's instances."""
        if function.kind == "storage":
            return 1, 0
        if function.callers == "researchers":
            return min(self.pool_size, RESEARCHER_POOL), 0
        return self.pool_size, self.max_overflow


@dataclass(frozen=True)
class Command:
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    # Environment variables read from Secret Manager (name -> secret) right before running.
    secret_env: dict[str, str] = field(default_factory=dict)
    # Run instead when argv fails (a `create` of what a former deploy made: its `update`).
    fallback: list[str] | None = None

    def shell(self, project: str) -> str:
        """The command as one line a person could paste into a shell."""
        assignments = [f"{name}={shlex.quote(value)}" for name, value in self.env.items()]
        assignments += [
            f'{name}="$({shlex.join(read_secret(secret, project))})"' for name, secret in self.secret_env.items()
        ]
        prefix = " ".join(["env", *assignments]) + " " if assignments else ""
        return prefix + shlex.join(self.argv) + (f" || {shlex.join(self.fallback)}" if self.fallback else "")


def read_secret(secret: str, project: str) -> list[str]:
    return ["gcloud", "secrets", "versions", "access", "latest", f"--secret={secret}", f"--project={project}"]


def env_flag(values: dict[str, str]) -> str:
    """--set-env-vars with ';' between pairs (gcloud topic escaping), as ALLOWED_ORIGINS has commas."""
    assert not any(";" in value for value in values.values())
    return "--set-env-vars=^;^" + ";".join(f"{name}={value}" for name, value in values.items())


def function_env(s: Settings, db_user: str, **extra: str) -> dict[str, str]:
    env = {
        "GOOGLE_CLOUD_PROJECT": s.project,
        "INSTANCE_CONNECTION_NAME": s.instance,
        "DB_NAME": s.db_name,
        "DB_USER": db_user,
    }
    if s.db_iam_auth:
        env["DB_IAM_AUTH"] = "true"
    env.update(extra)
    return env


# The pool of a function only researchers call (stats, exports, configuration, exclusion, erasure by
# number): a few people, rarely at once; with six such functions, three connections each would take
# the default plan past a default database's 100 connections.
RESEARCHER_POOL = 2


def http_env(s: Settings, db_user: str | None = None, **extra: str) -> dict[str, str]:
    # functions-framework's gunicorn reads WORKERS and THREADS: one process with a thread per
    # request Cloud Run may send it (its default is 4 threads per CPU, fewer than CONCURRENCY).
    return function_env(
        s,
        db_user or s.db_user,
        ALLOWED_ORIGINS=s.allowed_origins,
        DB_POOL_SIZE=str(s.pool_size),
        DB_MAX_OVERFLOW=str(s.max_overflow),
        WORKERS="1",
        THREADS=str(s.concurrency),
        **extra,
    )


def erasure_env(s: Settings) -> dict[str, str]:
    """delete_my_data and erase_visitor: an HTTP function's settings, their own database
    user, and the bucket whose objects an erasure deletes."""
    return http_env(s, s.erasure_db_user, STORAGE_BUCKET=s.bucket)


# The function Cloud Scheduler calls: run_maintenance, the one row whose callers are "scheduler".
(SCHEDULED,) = [function for function in FUNCTIONS if function.callers == "scheduler"]


def maintenance_url(s: Settings) -> str:
    """run_maintenance's URL, which is also the audience of the scheduler's OIDC token: a 2nd gen
    function answers at https://REGION-PROJECT.cloudfunctions.net/NAME (and at its run.app URL)."""
    return f"https://{s.region}-{s.project}.cloudfunctions.net/{SCHEDULED.name}"


def maintenance_env(s: Settings) -> dict[str, str]:
    """run_maintenance: an erasing function's settings, its own database user, retention, and the
    one identity whose OIDC token it accepts (checked again by the function, shared/web/invoker.py)."""
    extra = {
        "STORAGE_BUCKET": s.bucket,
        "MAINTENANCE_INVOKER": s.scheduler_service_account,
        "MAINTENANCE_AUDIENCE": maintenance_url(s),
    }
    if s.guest_retention_days:
        extra["GUEST_RETENTION_DAYS"] = s.guest_retention_days
    return http_env(s, s.maintenance_db_user, **extra)


def guest_limit_env(s: Settings, env: dict[str, str]) -> dict[str, str]:
    """create_session (guest_limit in its row): the guest-creation limit and the session limit too."""
    return {**env, "GUEST_LIMIT_PER_HOUR": s.guest_limit_per_hour, "SESSION_LIMIT_PER_HOUR": s.session_limit_per_hour}


def upload_tickets_env(s: Settings, env: dict[str, str]) -> dict[str, str]:
    """create_upload_ticket and the trigger (upload_tickets in their rows): the tickets' settings too."""
    return {**env, "UPLOAD_TICKETS": s.upload_tickets, "UPLOAD_TICKET_TTL_SECONDS": s.upload_ticket_ttl_seconds}


def trigger_env(s: Settings) -> dict[str, str]:
    return function_env(s, s.uploads_db_user, STORAGE_BUCKET=s.bucket, DB_POOL_SIZE="1", DB_MAX_OVERFLOW="0")


def prolific_env(s: Settings, env: dict[str, str]) -> dict[str, str]:
    """complete_session and run_maintenance (prolific in their rows): PROLIFIC_API_URL when it is set."""
    return {**env, "PROLIFIC_API_URL": s.prolific_api_url} if s.prolific_api_url else env


def with_app_check(s: Settings, function: Function, env: dict[str, str]) -> dict[str, str]:
    """A function whose row says app_check carries APP_CHECK when it is not off (its default)."""
    if function.app_check and s.app_check != "off":
        return {**env, "APP_CHECK": s.app_check}
    return env


# Each identity of a row (functions.IDENTITIES): its service account, the environment its
# functions get, and the secret of its database user's password.
IDENTITY_ENV = {"functions": http_env, "erasure": erasure_env, "maintenance": maintenance_env, "uploads": trigger_env}


def service_account_of(s: Settings, function: Function) -> str:
    return {
        "functions": s.service_account,
        "erasure": s.erasure_service_account,
        "maintenance": s.maintenance_service_account,
        "uploads": s.uploads_service_account,
    }[function.identity]


def password_secret_of(s: Settings, function: Function) -> str:
    """The erasing identities log in as the erasure user; the others as DB_USER."""
    return s.erasure_db_pass_secret if function.identity in ("erasure", "maintenance") else s.db_pass_secret


def env_of(s: Settings, function: Function) -> dict[str, str]:
    """The environment a function is deployed with, from its row."""
    env = IDENTITY_ENV[function.identity](s)
    if function.guest_limit:
        env = guest_limit_env(s, env)
    if function.upload_tickets:
        env = upload_tickets_env(s, env)
    if function.prolific:
        env = prolific_env(s, env)
    if function.kind == "http":
        pool_size, max_overflow = s.pool_of(function)
        env = {**env, "DB_POOL_SIZE": str(pool_size), "DB_MAX_OVERFLOW": str(max_overflow)}
    return with_app_check(s, function, env)


def secrets_of(s: Settings, function: Function) -> dict[str, str]:
    """--set-secrets beyond the database password (name -> secret)."""
    secrets = {"GUEST_LIMIT_KEY": s.guest_limit_key_secret} if function.guest_limit else {}
    if function.upload_tickets:
        secrets["UPLOAD_TICKET_KEY"] = s.upload_ticket_key_secret
    if function.participant_key:
        secrets["PARTICIPANT_KEY"] = s.participant_key_secret
    if function.prolific and s.prolific_api_token_secret:
        secrets["PROLIFIC_API_TOKEN"] = s.prolific_api_token_secret
    return secrets


def deploy_function(
    s: Settings,
    name: str,
    trigger: list[str],
    service_account: str,
    env: dict[str, str],
    sizing: list[str],
    password_secret: str | None = None,
    secrets: dict[str, str] | None = None,
) -> Command:
    """`secrets`: more environment variables from Secret Manager (name -> secret)."""
    argv = [
        "gcloud",
        "functions",
        "deploy",
        name,
        "--gen2",
        f"--project={s.project}",
        f"--region={s.region}",
        f"--runtime={RUNTIME}",
        "--source=.",
        f"--entry-point={name}",
        *trigger,
        f"--service-account={service_account}",
        *sizing,
        env_flag(env),
    ]
    mounted = {} if s.db_iam_auth else {"DB_PASS": password_secret or s.db_pass_secret}
    mounted.update(secrets or {})
    if mounted:
        argv.append("--set-secrets=" + ",".join(f"{var}={secret}:latest" for var, secret in mounted.items()))
    return Command(argv)


def hosting_region_problems(
    s: Settings, firebase_json: Path = ROOT / "firebase.json", page_config: Path = ROOT / "public" / "config.json"
) -> list[str]:
    """Hosting's /api rewrites and the page's config name a function region; it must be the one deployed to."""
    rewrites = json.loads(firebase_json.read_text())["hosting"].get("rewrites", [])
    regions = {r["function"].get("region", "us-central1") for r in rewrites if isinstance(r.get("function"), dict)}
    problems = []
    if regions - {s.region}:
        problems.append(
            f"firebase.json's hosting rewrites use region {', '.join(sorted(regions))} but "
            f"REGION={s.region}: make them the same"
        )
    # The page calls the functions at https://REGION-PROJECT.cloudfunctions.net (public/config.js).
    page_region = json.loads(page_config.read_text()).get("functionsRegion")
    if page_region and page_region != s.region:
        problems.append(
            f"public/config.json's functionsRegion is {page_region} but REGION={s.region}: make them the same"
        )
    return problems


def functions_problems(s: Settings) -> list[str]:
    """What the deployed functions would fail on: config.check() of the environment each gets."""
    # DB_PASS is not in that environment: --set-secrets gives it to the functions when they start.
    secrets = {} if s.db_iam_auth else {"DB_PASS": "from Secret Manager"}
    # The keys --set-secrets gives (secrets_of), stood in for by text of a valid length.
    placeholder = "from Secret Manager, at least 32 characters long"
    lines = [
        line
        for function in FUNCTIONS
        for line in config.check(
            {**env_of(s, function), **secrets, **{name: placeholder for name in secrets_of(s, function)}}
        )
    ]
    return list(dict.fromkeys(lines))


def problems(env: dict[str, str]) -> tuple[Settings | None, list[str]]:
    """The settings, and every reason not to deploy with them, one line each."""
    s, found = Settings.read(env)
    if s is None:  # the functions' environments are made from the required settings
        return None, found
    if s.connections_at_most() > s.max_connections:
        found.append(
            f"up to {s.connections_at_most()} database connections (MAX_INSTANCES, or RIGHTS_MAX_INSTANCES, "
            f"x (DB_POOL_SIZE + "
            f"DB_MAX_OVERFLOW) per HTTP function, + TRIGGER_MAX_INSTANCES) exceed DB_MAX_CONNECTIONS="
            f"{s.max_connections}: lower them, or raise DB_MAX_CONNECTIONS to the instance's max_connections"
        )
    return s, found + hosting_region_problems(s) + functions_problems(s)


def plan(s: Settings) -> list[Command]:
    """Every command of one deploy, in the order they run (for settings without problems)."""
    python = os.path.relpath(sys.executable, ROOT) if sys.executable.startswith(str(ROOT)) else sys.executable
    members = dict.fromkeys([s.db_user, s.uploads_db_user])  # the database users of the functions
    erasers = dict.fromkeys([s.erasure_db_user, s.maintenance_db_user])  # and those that erase
    commands = [
        Command(
            [
                python,
                "-m",
                "shared.migrate",
                *(f"--functions-user={user}" for user in members),
                *(f"--erasure-user={user}" for user in erasers),
            ],
            env={"INSTANCE_CONNECTION_NAME": s.instance, "DB_NAME": s.db_name, "DB_USER": s.migrate_db_user},
            secret_env={"DB_PASS": s.migrate_db_pass_secret},
        )
    ]
    for function in FUNCTIONS:
        commands.append(
            deploy_function(
                s,
                function.name,
                trigger_of(s, function),
                service_account_of(s, function),
                env_of(s, function),
                sizing_of(s, function),
                password_secret_of(s, function),
                secrets_of(s, function),
            )
        )
    commands += scheduler_commands(s)
    # firebase.json's storage rules name the deploy target "uploads", which this binds to BUCKET (in
    # .firebaserc): without a target, firebase deploy releases them to the project's default bucket
    # (firebase-tools lib/deploy/storage/prepare.js), which need not be BUCKET.
    commands.append(
        Command(["npx", "firebase", "target:apply", "storage", STORAGE_RULES_TARGET, s.bucket, "--project", s.project])
    )
    commands.append(
        Command(["npx", "firebase", "deploy", "--only", "firestore:rules,storage,hosting", "--project", s.project])
    )
    return commands


def trigger_of(s: Settings, function: Function) -> list[str]:
    """An HTTP function: public (it checks ID tokens and guest keys itself), or private, when only
    Cloud Scheduler calls it: Cloud Run's IAM lets only the scheduler's account (roles/run.invoker,
    scheduler_commands) in. The storage trigger: an Eventarc filter on the bucket, in its location,
    invoked as TRIGGER_SERVICE_ACCOUNT, retried."""
    if function.kind == "http":
        return ["--trigger-http", "--no-allow-unauthenticated" if function.private else "--allow-unauthenticated"]
    return [
        f"--trigger-event-filters=type={FINALIZED}",
        f"--trigger-event-filters=bucket={s.bucket}",
        f"--trigger-service-account={s.trigger_service_account}",
        "--retry",
        f"--trigger-location={s.trigger_location}",
    ]


def sizing_of(s: Settings, function: Function) -> list[str]:
    """The row's instance cap and timeout; an HTTP function serves CONCURRENCY requests per instance,
    the trigger one event at a time (Cloud Run's default for an event function)."""
    if function.kind == "http":
        return [
            f"--max-instances={s.instances_of(function)}",
            f"--concurrency={s.concurrency}",
            "--cpu=1",
            "--memory=512Mi",
            f"--timeout={function.timeout}",
        ]
    return [f"--max-instances={s.instances_of(function)}", "--memory=512Mi", f"--timeout={function.timeout}"]


SCHEDULER_JOB = "visitors-maintenance"
# The daily consistency audit (docs/design/audit.md): the same function with ?task=audit, on its own schedule.
AUDIT_JOB = "visitors-audit"
# Prolific completions from the server (SPEC §14.5): ?task=deliveries every minute, made only with
# PROLIFIC_API_TOKEN_SECRET (without a token there is nothing to deliver).
DELIVERIES_JOB = "visitors-deliveries"
STORAGE_RULES_TARGET = "uploads"  # firebase.json's storage deploy target


def scheduler_commands(s: Settings) -> list[Command]:
    """The scheduler's account may invoke run_maintenance and nothing else, and two or three jobs
    call it: the maintenance run (hourly), the audit (daily, ?task=audit) and, with
    PROLIFIC_API_TOKEN_SECRET, the Prolific deliveries (every minute, ?task=deliveries).

    `gcloud functions add-invoker-policy-binding` grants roles/run.invoker on the function's
    Cloud Run service only (https://cloud.google.com/sdk/gcloud/reference/functions/add-invoker-policy-binding).
    A job sends a Google-signed OIDC token of that account with the function's URL as audience
    (`--oidc-service-account-email`, `--oidc-token-audience`:
    https://cloud.google.com/sdk/gcloud/reference/scheduler/jobs/create/http); POST, as the
    function answers. A second deploy finds a job made: then it is updated with the same flags."""
    url = maintenance_url(s)

    def job(name: str, schedule: str, uri: str) -> Command:
        flags = [
            name,
            f"--project={s.project}",
            f"--location={s.region}",
            f"--schedule={schedule}",
            "--time-zone=Etc/UTC",
            f"--uri={uri}",
            "--http-method=POST",
            f"--oidc-service-account-email={s.scheduler_service_account}",
            f"--oidc-token-audience={url}",
            f"--attempt-deadline={SCHEDULED.timeout}",
        ]
        return Command(
            ["gcloud", "scheduler", "jobs", "create", "http", *flags],
            fallback=["gcloud", "scheduler", "jobs", "update", "http", *flags],
        )

    deliveries = [job(DELIVERIES_JOB, s.deliveries_schedule, f"{url}?task=deliveries")]
    return [
        Command(
            [
                "gcloud",
                "functions",
                "add-invoker-policy-binding",
                SCHEDULED.name,
                f"--project={s.project}",
                f"--region={s.region}",
                f"--member=serviceAccount:{s.scheduler_service_account}",
            ]
        ),
        job(SCHEDULER_JOB, s.maintenance_schedule, url),
        job(AUDIT_JOB, s.audit_schedule, f"{url}?task=audit"),
        *(deliveries if s.prolific_api_token_secret else []),
    ]


def run(commands: list[Command], project: str) -> None:
    for command in commands:
        print(f"+ {command.shell(project)}", flush=True)
        env = {**os.environ, **command.env}
        for name, secret in command.secret_env.items():
            env[name] = subprocess.run(
                read_secret(secret, project), check=True, capture_output=True, text=True, cwd=ROOT
            ).stdout.rstrip("\n")
        if command.fallback is None:
            subprocess.run(command.argv, check=True, cwd=ROOT, env=env)
        elif subprocess.run(command.argv, cwd=ROOT, env=env).returncode != 0:
            subprocess.run(command.fallback, check=True, cwd=ROOT, env=env)


def main(env: dict[str, str] | None = None) -> int:
    env = dict(os.environ if env is None else env)
    settings, found = problems(env)
    if found:
        for line in found:
            print(f"make deploy: {line}", file=sys.stderr)
        return 2
    assert settings is not None  # no problem found: the settings were read
    commands = plan(settings)
    if env.get("DRY_RUN", "").strip() not in ("", "0"):
        for command in commands:
            print(command.shell(settings.project))
        print(
            f"# at most {settings.connections_at_most()} database connections "
            f"(DB_MAX_CONNECTIONS={settings.max_connections})",
            file=sys.stderr,
        )
        return 0
    try:
        run(commands, settings.project)
    except subprocess.CalledProcessError as error:
        print(f"make deploy: {shlex.join(error.cmd[:4])} ... failed with exit code {error.returncode}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
