"""`make setup`: what a new Google Cloud project needs once, before the first `make deploy`
(docs/deployment.md). Each step is one printed shell line that checks before it creates or only
sets a state, so it may be run again at any time; DRY_RUN=1 prints every line and runs nothing."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from dataclasses import dataclass

from devtools.deploy import ROOT

REQUIRED = ("PROJECT", "REGION")

# Every API the functions, their triggers, the scheduler and Firebase use
# (https://cloud.google.com/sdk/gcloud/reference/services/enable: enabling an enabled service is a no-op).
APIS = (
    "cloudfunctions.googleapis.com",
    "run.googleapis.com",
    "cloudbuild.googleapis.com",
    "artifactregistry.googleapis.com",
    "eventarc.googleapis.com",
    "pubsub.googleapis.com",
    "sqladmin.googleapis.com",
    "secretmanager.googleapis.com",
    "firestore.googleapis.com",
    "identitytoolkit.googleapis.com",
    "cloudscheduler.googleapis.com",
    "firebase.googleapis.com",
    "firebaserules.googleapis.com",
    "firebasehosting.googleapis.com",
    "firebasestorage.googleapis.com",
)

# One service account per job (docs/deployment.md, Least privilege).
ACCOUNTS = (
    "visitors-functions",
    "visitors-uploads",
    "visitors-erasure",
    "visitors-events",
    "visitors-maintenance",
    "visitors-scheduler",
)
# The project roles of each (the IAM table); the bucket's and the secrets' are granted on them below.
# The custom role of the functions that verify ID tokens (made by a step below, granted in PROJECT_ROLES).
TOKEN_CHECKER_ID = "visitorsTokenChecker"
TOKEN_CHECKER = f"projects/{{project}}/roles/{TOKEN_CHECKER_ID}"
TOKEN_CHECKER_PERMISSIONS = ("firebaseauth.users.get",)
PROJECT_ROLES = (
    *(
        (who, "roles/cloudsql.client")
        for who in ("visitors-functions", "visitors-uploads", "visitors-erasure", "visitors-maintenance")
    ),
    *(
        (who, "roles/cloudsql.instanceUser")
        for who in ("visitors-functions", "visitors-uploads", "visitors-erasure", "visitors-maintenance")
    ),
    # Checking that an ID token is not revoked reads the user (firebase-admin's get_user): the one
    # permission firebaseauth.users.get, in a role of the project's own rather than
    # roles/firebaseauth.viewer, which also reads the providers' configs and the Firebase apps
    # (https://cloud.google.com/iam/docs/roles-permissions/firebaseauth).
    ("visitors-functions", TOKEN_CHECKER),
    ("visitors-erasure", TOKEN_CHECKER),
    # Firestore: only the identities that write it. visitors-functions reads none of it (uploads
    # are read from PostgreSQL, SPEC §16), so it has no Firestore role at all.
    *((who, "roles/datastore.user") for who in ("visitors-uploads", "visitors-erasure", "visitors-maintenance")),
    ("visitors-events", "roles/eventarc.eventReceiver"),
)
BUCKET_WRITERS = ("visitors-uploads", "visitors-erasure", "visitors-maintenance")  # roles/storage.objectUser
# Secret Manager secrets: (name, openssl rand bytes), and who may read each.
SECRETS = (
    ("visitors-db-migrator-password", 30),
    ("visitors-db-password", 30),
    ("visitors-db-erasure-password", 30),
    ("visitors-guest-limit-key", 32),
    ("visitors-upload-ticket-key", 32),
    ("visitors-participant-key", 32),
)
SECRET_READERS = (
    ("visitors-functions", "visitors-db-password"),
    ("visitors-uploads", "visitors-db-password"),
    ("visitors-erasure", "visitors-db-erasure-password"),
    ("visitors-maintenance", "visitors-db-erasure-password"),
    ("visitors-functions", "visitors-guest-limit-key"),
    # create_upload_ticket signs upload tickets, the storage trigger verifies them.
    ("visitors-functions", "visitors-upload-ticket-key"),
    ("visitors-uploads", "visitors-upload-ticket-key"),
    # create_session and complete_session hash study participants for the participation ledger.
    ("visitors-functions", "visitors-participant-key"),
)
# The IAM database users (DB_IAM_AUTH=true) of the accounts that log in to PostgreSQL.
IAM_DB_USERS = ("visitors-functions", "visitors-uploads", "visitors-erasure", "visitors-maintenance")
WEB_APP = "visitors"  # the Firebase web app's display name


@dataclass(frozen=True)
class Settings:
    project: str
    region: str
    bucket: str
    instance: str
    tier: str
    db_name: str
    db_iam_auth: bool

    @classmethod
    def read(cls, env: dict[str, str]) -> tuple[Settings | None, list[str]]:
        problems = [
            f"{name} is not set: make setup {name}=... (see docs/deployment.md)"
            for name in REQUIRED
            if not env.get(name, "").strip()
        ]
        if problems:
            return None, problems
        project = env["PROJECT"].strip()
        iam = env.get("DB_IAM_AUTH", "false").strip().lower()
        if iam not in ("1", "true", "yes", "0", "false", "no", ""):
            problems.append(f"DB_IAM_AUTH={iam!r} is not a boolean: set it to true or false")
        return cls(
            project=project,
            region=env["REGION"].strip(),
            bucket=(env.get("BUCKET", "").strip() or f"{project}-uploads").removeprefix("gs://").rstrip("/"),
            instance=env.get("INSTANCE", "").strip() or "visitors",
            # The smallest tier that holds the defaults' connections is db-custom-1-3840; a small study
            # may choose a shared-core one (docs/deployment.md, Cost): TIER=db-g1-small.
            tier=env.get("TIER", "").strip() or "db-custom-1-3840",
            db_name=env.get("DB_NAME", "").strip() or "visitors",
            db_iam_auth=iam in ("1", "true", "yes"),
        ), problems


@dataclass(frozen=True)
class Step:
    """One idempotent step: `run` (a shell pipeline, a list of argvs) when `check` fails, or always when
    there is no check. `how` is CHECK or SETS (the module's docstring)."""

    what: str
    run: list[list[str]]
    check: list[str] | None = None
    contains: str | None = None  # the check passes only when its output contains this
    reads_only: bool = False  # changes nothing (the sign-in check)

    @property
    def how(self) -> str:
        return "READS" if self.reads_only else "CHECK" if self.check else "SETS"

    def shell(self) -> str:
        pipeline = " | ".join(join(argv) for argv in self.run)
        if self.check is None:
            return pipeline
        if self.contains is None:
            return f"{join(self.check)} >/dev/null 2>&1 || {pipeline}"
        return f"{join(self.check)} 2>/dev/null | grep -qF {shlex.quote(self.contains)} || {pipeline}"


def quote(arg: str) -> str:
    """shlex.quote, but an argument with a command substitution, $(...), in double quotes: the shell
    runs it (a token, a password read from Secret Manager) when the line runs, and it is never printed."""
    if "$(" not in arg:
        return shlex.quote(arg)
    assert not any(c in arg for c in '"`\\'), arg
    return f'"{arg}"'


def join(argv: list[str]) -> str:
    return " ".join(quote(arg) for arg in argv)


def account(s: Settings, name: str) -> str:
    return f"{name}@{s.project}.iam.gserviceaccount.com"


def member(s: Settings, name: str) -> str:
    return f"serviceAccount:{account(s, name)}"


def steps(s: Settings) -> list[Step]:
    p = f"--project={s.project}"
    out = [
        # The sign-in this needs (not a change): fails at once, before anything is made, without it.
        Step("gcloud is signed in", [["gcloud", "auth", "print-access-token", "--quiet"]], reads_only=True),
        Step("the APIs", [["gcloud", "services", "enable", *APIS, p]]),
        # firebase-tools: `projects:list` lists the Firebase projects the signed-in user sees
        # (https://firebase.google.com/docs/cli#project_aliases); `projects:addfirebase` fails on one.
        Step(
            "Firebase on the project",
            [["npx", "firebase", "projects:addfirebase", s.project]],
            check=["npx", "firebase", "projects:list", "--json"],
            contains=f'"projectId": "{s.project}"',
        ),
        Step(
            "its web app (Hosting serves its config)",
            [["npx", "firebase", "apps:create", "web", WEB_APP, "--project", s.project]],
            check=["npx", "firebase", "apps:list", "web", "--project", s.project, "--json"],
            contains=f'"displayName": "{WEB_APP}"',
        ),
        # https://cloud.google.com/sdk/gcloud/reference/firestore/databases/create
        Step(
            "the Firestore database, in the functions' region",
            [["gcloud", "firestore", "databases", "create", f"--location={s.region}", p]],
            check=["gcloud", "firestore", "databases", "describe", "--database=(default)", p],
        ),
        # Identity Toolkit Admin API v2, projects.updateConfig: PATCH sets the two providers on.
        Step(
            "the sign-in providers: Email/Password, and Anonymous (the page's ANONYMOUS_AUTH)",
            [
                [
                    "curl",
                    "-fsS",
                    "-o",
                    "/dev/null",
                    "-X",
                    "PATCH",
                    "-H",
                    "Authorization: Bearer $(gcloud auth print-access-token)",
                    "-H",
                    f"X-Goog-User-Project: {s.project}",
                    "-H",
                    "Content-Type: application/json",
                    f"https://identitytoolkit.googleapis.com/admin/v2/projects/{s.project}/config"
                    "?updateMask=signIn.email,signIn.anonymous",
                    "-d",
                    '{"signIn":{"email":{"enabled":true,"passwordRequired":true},"anonymous":{"enabled":true}}}',
                ]
            ],
        ),
        # https://cloud.google.com/sdk/gcloud/reference/storage/buckets/create: in the functions' region, so
        # that TRIGGER_LOCATION is REGION.
        Step(
            "the uploads bucket",
            [
                [
                    "gcloud",
                    "storage",
                    "buckets",
                    "create",
                    f"gs://{s.bucket}",
                    f"--location={s.region}",
                    "--uniform-bucket-level-access",
                    p,
                ]
            ],
            check=["gcloud", "storage", "buckets", "describe", f"gs://{s.bucket}", p],
        ),
        # Cloud Storage for Firebase: projects.buckets.addFirebase links it, so that the page's SDK and the
        # storage rules reach it; GET answers 404 until then.
        Step(
            "the bucket in Firebase",
            [
                [
                    "curl",
                    "-fsS",
                    "-o",
                    "/dev/null",
                    "-X",
                    "POST",
                    "-H",
                    "Authorization: Bearer $(gcloud auth print-access-token)",
                    "-H",
                    f"X-Goog-User-Project: {s.project}",
                    "-H",
                    "Content-Type: application/json",
                    "-d",
                    "{}",
                    f"https://firebasestorage.googleapis.com/v1beta/projects/{s.project}/buckets/{s.bucket}:addFirebase",
                ]
            ],
            check=[
                "curl",
                "-fsS",
                "-o",
                "/dev/null",
                "-H",
                "Authorization: Bearer $(gcloud auth print-access-token)",
                "-H",
                f"X-Goog-User-Project: {s.project}",
                f"https://firebasestorage.googleapis.com/v1beta/projects/{s.project}/buckets/{s.bucket}",
            ],
        ),
        # https://cloud.google.com/sdk/gcloud/reference/sql/instances/create: db-custom-* and the shared-core
        # tiers are Enterprise edition ones, hence --edition=ENTERPRISE.
        Step(
            "Cloud SQL for PostgreSQL",
            [
                [
                    "gcloud",
                    "sql",
                    "instances",
                    "create",
                    s.instance,
                    "--database-version=POSTGRES_16",
                    "--edition=ENTERPRISE",
                    f"--tier={s.tier}",
                    f"--region={s.region}",
                    *(["--database-flags=cloudsql.iam_authentication=on"] if s.db_iam_auth else []),
                    p,
                ]
            ],
            check=["gcloud", "sql", "instances", "describe", s.instance, p],
        ),
        Step(
            "its database",
            [["gcloud", "sql", "databases", "create", s.db_name, f"--instance={s.instance}", p]],
            check=["gcloud", "sql", "databases", "describe", s.db_name, f"--instance={s.instance}", p],
        ),
    ]
    if s.db_iam_auth:
        # An instance made before: the flag on (https://cloud.google.com/sdk/gcloud/reference/sql/instances/patch;
        # --database-flags replaces the instance's flags with these).
        out.append(
            Step(
                "IAM database authentication on the instance",
                [
                    [
                        "gcloud",
                        "sql",
                        "instances",
                        "patch",
                        s.instance,
                        "--database-flags=cloudsql.iam_authentication=on",
                        p,
                    ]
                ],
                check=[
                    "gcloud",
                    "sql",
                    "instances",
                    "describe",
                    s.instance,
                    p,
                    "--format=value(settings.databaseFlags)",
                ],
                contains="cloudsql.iam_authentication",
            )
        )
    # https://cloud.google.com/sdk/gcloud/reference/secrets/create: the value from stdin (--data-file=-).
    for secret, size in SECRETS:
        out.append(
            Step(
                f"the secret {secret}",
                [
                    ["openssl", "rand", "-base64", str(size)],
                    ["tr", "-d", "\\n"],
                    ["gcloud", "secrets", "create", secret, "--data-file=-", p],
                ],
                check=["gcloud", "secrets", "describe", secret, p],
            )
        )
    out.append(
        Step(
            "the migrating user's password (postgres), from its secret",
            [
                [
                    "gcloud",
                    "sql",
                    "users",
                    "set-password",
                    "postgres",
                    f"--instance={s.instance}",
                    p,
                    f"--password=$(gcloud secrets versions access latest --secret=visitors-db-migrator-password {p})",
                ]
            ],
        )
    )
    # https://cloud.google.com/sdk/gcloud/reference/iam/service-accounts/create
    for name in ACCOUNTS:
        out.append(
            Step(
                f"the service account {name}",
                [["gcloud", "iam", "service-accounts", "create", name, p]],
                check=["gcloud", "iam", "service-accounts", "describe", account(s, name), p],
            )
        )
    # https://cloud.google.com/sdk/gcloud/reference/iam/roles/create
    out.append(
        Step(
            f"the role {TOKEN_CHECKER_ID} ({', '.join(TOKEN_CHECKER_PERMISSIONS)}: the revocation check of ID tokens)",
            [
                [
                    "gcloud",
                    "iam",
                    "roles",
                    "create",
                    TOKEN_CHECKER_ID,
                    p,
                    "--title=Visitors token checker",
                    f"--permissions={','.join(TOKEN_CHECKER_PERMISSIONS)}",
                    "--stage=GA",
                ]
            ],
            check=["gcloud", "iam", "roles", "describe", TOKEN_CHECKER_ID, p],
        )
    )
    # https://cloud.google.com/sdk/gcloud/reference/projects/add-iam-policy-binding: a binding the policy has
    # already is left as it is.
    for name, project_role in PROJECT_ROLES:
        role = project_role.format(project=s.project)
        out.append(
            Step(
                f"{role} to {name}",
                [
                    [
                        "gcloud",
                        "projects",
                        "add-iam-policy-binding",
                        s.project,
                        f"--member={member(s, name)}",
                        f"--role={role}",
                        "--condition=None",
                    ]
                ],
            )
        )
    for name in BUCKET_WRITERS:
        out.append(
            Step(
                f"roles/storage.objectUser on the bucket to {name}",
                [
                    [
                        "gcloud",
                        "storage",
                        "buckets",
                        "add-iam-policy-binding",
                        f"gs://{s.bucket}",
                        f"--member={member(s, name)}",
                        "--role=roles/storage.objectUser",
                        p,
                    ]
                ],
            )
        )
    for name, secret in SECRET_READERS:
        out.append(
            Step(
                f"{secret} readable by {name}",
                [
                    [
                        "gcloud",
                        "secrets",
                        "add-iam-policy-binding",
                        secret,
                        f"--member={member(s, name)}",
                        "--role=roles/secretmanager.secretAccessor",
                        p,
                    ]
                ],
            )
        )
    # The bucket's events reach Eventarc through Pub/Sub, published by Cloud Storage's service agent.
    out.append(
        Step(
            "roles/pubsub.publisher to Cloud Storage's service agent",
            [
                [
                    "gcloud",
                    "projects",
                    "add-iam-policy-binding",
                    s.project,
                    f"--member=serviceAccount:$(gcloud storage service-agent {p})",
                    "--role=roles/pubsub.publisher",
                    "--condition=None",
                ]
            ],
        )
    )
    if s.db_iam_auth:
        # https://cloud.google.com/sdk/gcloud/reference/sql/users/create (--type=cloud_iam_service_account: the
        # account's email without .gserviceaccount.com).
        for name in IAM_DB_USERS:
            user = f"{name}@{s.project}.iam"
            out.append(
                Step(
                    f"the IAM database user {user}",
                    [
                        [
                            "gcloud",
                            "sql",
                            "users",
                            "create",
                            user,
                            f"--instance={s.instance}",
                            "--type=cloud_iam_service_account",
                            p,
                        ]
                    ],
                    check=["gcloud", "sql", "users", "describe", user, f"--instance={s.instance}", p],
                )
            )
    return out


def next_steps(s: Settings) -> list[str]:
    """What to do after: the first deploy (and, with passwords, the two database users, made with SQL)."""
    lines = []
    if not s.db_iam_auth:
        lines.append(
            "# The functions' database users, as postgres (not `gcloud sql users create`, whose users are "
            "members of cloudsqlsuperuser): docs/deployment.md, Database users"
        )
    lines.append(
        f"# then: make deploy PROJECT={s.project} REGION={s.region} BUCKET={s.bucket} "
        f"TRIGGER_LOCATION={s.region} INSTANCE_CONNECTION_NAME={s.project}:{s.region}:{s.instance}"
        + (" DB_IAM_AUTH=true" if s.db_iam_auth else "")
    )
    return lines


def main(env: dict[str, str] | None = None) -> int:
    env = dict(os.environ if env is None else env)
    settings, problems = Settings.read(env)
    if problems:
        for line in problems:
            print(f"make setup: {line}", file=sys.stderr)
        return 2
    assert settings is not None  # no problem found: the settings were read
    plan = steps(settings)
    if env.get("DRY_RUN", "").strip() not in ("", "0"):
        for step in plan:
            print(f"# {step.what} ({step.how})")
            print(step.shell())
        print("\n".join(next_steps(settings)))
        return 0
    for step in plan:
        print(f"# {step.what} ({step.how})\n+ {step.shell()}", flush=True)
        if subprocess.run(["bash", "-o", "pipefail", "-c", step.shell()], cwd=ROOT).returncode != 0:
            print(
                f"make setup: {step.what} failed; fix it and run make setup again (every step is idempotent)",
                file=sys.stderr,
            )
            return 1
    print("\n".join(next_steps(settings)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
