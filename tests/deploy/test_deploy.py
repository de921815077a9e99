"""`make deploy DRY_RUN=1`: the exact commands of a deploy, printed by running make itself."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from devtools import deploy
from functions import BY_NAME, FUNCTIONS, HTTP, NAMES

# Selections of functions.FUNCTIONS, the one list of the deployed functions (one row each).
HTTP_FUNCTIONS = tuple(f.name for f in HTTP)
ERASURE_FUNCTIONS = tuple(f.name for f in FUNCTIONS if f.identity == "erasure")
PRIVATE_FUNCTIONS = tuple(f.name for f in FUNCTIONS if f.private)
FEW_INSTANCES_FUNCTIONS = tuple(f.name for f in FUNCTIONS if f.max_instances == "RIGHTS_MAX_INSTANCES")
# The researchers' reading functions (SPEC §10): few callers, read-only.
RESEARCH_FUNCTIONS = tuple(f.name for f in FUNCTIONS if f.callers == "researchers" and f.identity == "functions")
APP_CHECK_FUNCTIONS = tuple(f.name for f in FUNCTIONS if f.app_check)
# The functions that erase, and so log in as a member of visitor_erasure.
ERASING = tuple(f.name for f in FUNCTIONS if f.identity in ("erasure", "maintenance"))
TICKETED = tuple(f.name for f in FUNCTIONS if f.upload_tickets)
HASHING = tuple(f.name for f in FUNCTIONS if f.participant_key)

ROOT = Path(__file__).resolve().parent.parent.parent
SETTINGS = {
    "PROJECT": "acme-study",
    "REGION": "europe-west1",
    "BUCKET": "acme-study.appspot.com",
    "INSTANCE_CONNECTION_NAME": "acme-study:europe-west1:visitors",
}
REQUIRED = sorted(SETTINGS)
SETTINGS["TRIGGER_LOCATION"] = "us"  # an .appspot.com bucket in the US multi-region


def make_deploy(**variables: str) -> subprocess.CompletedProcess:
    # A clean environment: only what make needs and the variables of this call.
    env = {name: os.environ[name] for name in ("PATH", "HOME", "LANG") if name in os.environ}
    arguments = [f"{name}={value}" for name, value in variables.items()]
    return subprocess.run(
        ["make", "--no-print-directory", "deploy", *arguments],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def printed_commands(**overrides: str) -> list[list[str]]:
    result = make_deploy(DRY_RUN="1", **{**SETTINGS, **overrides})
    assert result.returncode == 0, result.stderr
    return [shlex.split(line) for line in result.stdout.splitlines() if line.strip()]


def flags(argv: list[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for arg in argv:
        if arg.startswith("--"):
            name, _, value = arg.partition("=")
            found.setdefault(name, []).append(value)
    return found


def env_vars(argv: list[str]) -> dict[str, str]:
    (value,) = flags(argv)["--set-env-vars"]
    assert value.startswith("^;^"), "pairs are ;-separated: ALLOWED_ORIGINS holds commas"
    return dict(pair.split("=", 1) for pair in value[3:].split(";"))


def deploys(commands: list[list[str]]) -> dict[str, list[str]]:
    return {argv[3]: argv for argv in commands if argv[:3] == ["gcloud", "functions", "deploy"]}


def test_every_function_is_deployed_gen2_in_the_region_with_its_entry_point():
    commands = printed_commands()
    deployed = deploys(commands)
    assert list(deployed) == list(NAMES)  # every row, in its order
    for name, argv in deployed.items():
        f = flags(argv)
        assert "--gen2" in f
        assert f["--region"] == ["europe-west1"] and f["--project"] == ["acme-study"]
        assert f["--runtime"] == ["python311"] and f["--source"] == ["."]
        assert f["--entry-point"] == [name]
        env = env_vars(argv)
        assert env["INSTANCE_CONNECTION_NAME"] == "acme-study:europe-west1:visitors"
        assert env["GOOGLE_CLOUD_PROJECT"] == "acme-study"
        assert env["DB_USER"] == ("visitors-erasure" if name in ERASING else "visitors-functions")
        assert env["DB_NAME"] == "visitors"
    for name in set(HTTP_FUNCTIONS) - set(PRIVATE_FUNCTIONS):
        f = flags(deployed[name])
        account = "visitors-erasure" if name in ERASURE_FUNCTIONS else "visitors-functions"
        assert f["--service-account"] == [f"{account}@acme-study.iam.gserviceaccount.com"]
        assert "--trigger-http" in f and "--allow-unauthenticated" in f
        assert "--retry" not in f and "--trigger-event-filters" not in f
        assert (
            env_vars(deployed[name])["ALLOWED_ORIGINS"]
            == "https://acme-study.web.app,https://acme-study.firebaseapp.com"
        )
        # One gunicorn process, a thread per concurrent request, and a pool that never opens
        # a connection only to close it after the burst.
        assert f["--concurrency"] == ["8"]
        assert {k: env_vars(deployed[name])[k] for k in ("WORKERS", "THREADS", "DB_POOL_SIZE", "DB_MAX_OVERFLOW")} == {
            "WORKERS": "1",
            "THREADS": "8",
            # the researchers' functions keep at most 2 (deploy.RESEARCHER_POOL): the plan's budget
            "DB_POOL_SIZE": "2" if BY_NAME[name].callers == "researchers" else "3",
            "DB_MAX_OVERFLOW": "0",
        }


def test_the_erasing_functions_have_their_own_identity_database_user_and_the_bucket():
    deployed = deploys(printed_commands())
    for name in ERASURE_FUNCTIONS:
        f, env = flags(deployed[name]), env_vars(deployed[name])
        assert f["--service-account"] == ["visitors-erasure@acme-study.iam.gserviceaccount.com"]
        assert f["--set-secrets"] == ["DB_PASS=visitors-db-erasure-password:latest"]
        assert (env["DB_USER"], env["STORAGE_BUCKET"]) == ("visitors-erasure", "acme-study.appspot.com")
    for name in set(HTTP_FUNCTIONS) - set(ERASING):
        assert "STORAGE_BUCKET" not in env_vars(deployed[name])


def test_the_storage_trigger_filters_on_the_bucket_and_retries():
    f = flags(deploys(printed_commands())["on_upload_finalized"])
    assert sorted(f["--trigger-event-filters"]) == [
        "bucket=acme-study.appspot.com",
        "type=google.cloud.storage.object.v1.finalized",
    ]
    assert "--retry" in f and "--trigger-http" not in f and "--allow-unauthenticated" not in f
    # Its own identities: the code's (Storage, Firestore) and Eventarc's (invoking it).
    assert f["--service-account"] == ["visitors-uploads@acme-study.iam.gserviceaccount.com"]
    assert f["--trigger-service-account"] == ["visitors-events@acme-study.iam.gserviceaccount.com"]
    assert env_vars(deploys(printed_commands())["on_upload_finalized"])["STORAGE_BUCKET"] == "acme-study.appspot.com"


def test_secrets_come_from_secret_manager_never_inline():
    # A password in the deployer's environment must not leak into any command.
    sentinel = "sentinel-pass-7f3a"
    commands = printed_commands(DB_PASS=sentinel, MIGRATE_DB_PASS=sentinel)
    for name, argv in deploys(commands).items():
        secret = "visitors-db-erasure-password" if name in ERASING else "visitors-db-password"
        limit_key = ",GUEST_LIMIT_KEY=visitors-guest-limit-key:latest" if name == "create_session" else ""
        ticket_key = ",UPLOAD_TICKET_KEY=visitors-upload-ticket-key:latest" if name in TICKETED else ""
        ledger_key = ",PARTICIPANT_KEY=visitors-participant-key:latest" if name in HASHING else ""
        assert flags(argv)["--set-secrets"] == [f"DB_PASS={secret}:latest{limit_key}{ticket_key}{ledger_key}"]
        assert not {"DB_PASS", "GUEST_LIMIT_KEY", "UPLOAD_TICKET_KEY", "PARTICIPANT_KEY"} & set(env_vars(argv))
    printed = "\n".join(shlex.join(argv) for argv in commands)
    assert sentinel not in printed
    assert printed.count("DB_PASS") == len(deploys(commands)) + 1  # --set-secrets, and the migration's $(...)


def test_migrations_run_once_before_the_functions_with_the_password_read_from_secret_manager():
    commands = printed_commands()
    migrations = [i for i, argv in enumerate(commands) if "shared.migrate" in argv]
    assert len(migrations) == 1
    (index,) = migrations
    first_function = min(i for i, argv in enumerate(commands) if argv[:3] == ["gcloud", "functions", "deploy"])
    assert index < first_function
    argv = commands[index]
    assert argv[0] == "env"
    assignments = dict(a.split("=", 1) for a in argv[1:] if "=" in a and not a.startswith("-"))
    assert assignments["INSTANCE_CONNECTION_NAME"] == "acme-study:europe-west1:visitors"
    assert assignments["DB_USER"] == "postgres"
    assert assignments["DB_PASS"] == (
        "$(gcloud secrets versions access latest --secret=visitors-db-migrator-password --project=acme-study)"
    )
    assert argv[-4:] == [
        "-m",
        "shared.migrate",
        "--functions-user=visitors-functions",
        "--erasure-user=visitors-erasure",
    ]


def test_firebase_rules_and_hosting_are_deployed_last():
    commands = printed_commands()
    assert commands[-1] == [
        "npx",
        "firebase",
        "deploy",
        "--only",
        "firestore:rules,storage,hosting",
        "--project",
        "acme-study",
    ]


def test_the_storage_rules_go_to_the_uploads_bucket_not_the_default_one():
    """firebase.json names a deploy target for the storage rules, bound to BUCKET just before the deploy."""
    commands = printed_commands(BUCKET="acme-uploads")
    assert commands[-2] == [
        "npx",
        "firebase",
        "target:apply",
        "storage",
        "uploads",
        "acme-uploads",
        "--project",
        "acme-study",
    ]
    firebase = json.loads((ROOT / "firebase.json").read_text())
    assert firebase["storage"] == [{"target": "uploads", "rules": "storage.rules"}]


def test_the_trigger_location_is_asked_for_with_how_to_find_it():
    result = make_deploy(DRY_RUN="1", **{k: v for k, v in SETTINGS.items() if k != "TRIGGER_LOCATION"})
    assert result.returncode != 0 and result.stdout.strip() == ""
    lines = [line for line in result.stderr.splitlines() if not line.startswith("make: ***")]
    assert lines == [
        "make deploy: TRIGGER_LOCATION is not set: the storage trigger must be in the bucket's "
        "location; set it to `gcloud storage buckets describe gs://acme-study.appspot.com "
        "--format='value(location)'`, lowercased (e.g. us, eu, europe-west1)"
    ]
    commands = printed_commands(TRIGGER_LOCATION="US")
    (trigger,) = [c for c in commands if "on_upload_finalized" in c and "deploy" in c]
    assert "--trigger-location=us" in trigger


def test_iam_database_auth_sends_no_password_at_all():
    commands = printed_commands(DB_IAM_AUTH="true")
    deployed = deploys(commands)
    for name, argv in deployed.items():
        secrets = {
            **{hashing: ["PARTICIPANT_KEY=visitors-participant-key:latest"] for hashing in HASHING},
            "create_session": [
                "GUEST_LIMIT_KEY=visitors-guest-limit-key:latest,PARTICIPANT_KEY=visitors-participant-key:latest"
            ],
            **{ticketed: ["UPLOAD_TICKET_KEY=visitors-upload-ticket-key:latest"] for ticketed in TICKETED},
        }
        assert flags(argv).get("--set-secrets", []) == secrets.get(name, [])
        env = env_vars(argv)
        assert env["DB_IAM_AUTH"] == "true"
        # Each service account is its own database user, and each joins visitor_functions.
        account = flags(argv)["--service-account"][0]
        assert env["DB_USER"] == account.removesuffix(".gserviceaccount.com")
    (migrate,) = [argv for argv in commands if "shared.migrate" in argv]
    assert migrate[-4:] == [
        "--functions-user=visitors-functions@acme-study.iam",
        "--functions-user=visitors-uploads@acme-study.iam",
        "--erasure-user=visitors-erasure@acme-study.iam",
        "--erasure-user=visitors-maintenance@acme-study.iam",
    ]


def test_sizing_and_options_are_passed_through():
    # DB_MAX_CONNECTIONS: these sizes need up to 4 x 3 x 4 + 7 x 1 x 4 + 5 = 81 connections.
    deployed = deploys(
        printed_commands(
            MAX_INSTANCES="3",
            CONCURRENCY="16",
            DB_POOL_SIZE="3",
            DB_MAX_OVERFLOW="1",
            TRIGGER_LOCATION="eu",
            ALLOWED_ORIGINS="https://a.example,https://b.example",
        )
    )
    f = flags(deployed["create_session"])
    assert f["--max-instances"] == ["3"]
    for rare in ("delete_my_data", "create_claim_code"):
        assert flags(deployed[rare])["--max-instances"] == ["1"]  # RIGHTS_MAX_INSTANCES
    for researchers in RESEARCH_FUNCTIONS:  # few callers, read-only: the functions' identity
        assert flags(deployed[researchers])["--max-instances"] == ["1"]
        assert (
            flags(deployed[researchers])["--service-account"] == flags(deployed["create_session"])["--service-account"]
        )
        assert "--allow-unauthenticated" in deployed[researchers]  # the claim is checked by the function
    assert flags(deployed["export_data"])["--timeout"] == ["3600s"]  # an export streams for minutes
    assert flags(deployed["get_study_stats"])["--timeout"] == f["--timeout"] == ["60s"]
    assert f["--concurrency"] == ["16"] and env_vars(deployed["create_session"])["THREADS"] == "16"
    assert env_vars(deployed["create_session"])["DB_POOL_SIZE"] == "3"
    assert env_vars(deployed["create_session"])["DB_MAX_OVERFLOW"] == "1"
    assert env_vars(deployed["register"])["ALLOWED_ORIGINS"] == "https://a.example,https://b.example"
    assert flags(deployed["on_upload_finalized"])["--trigger-location"] == ["eu"]


@pytest.mark.parametrize("missing", REQUIRED)
def test_a_missing_variable_is_one_line_naming_it_and_nothing_runs(missing):
    result = make_deploy(DRY_RUN="1", **{k: v for k, v in SETTINGS.items() if k != missing})
    assert result.returncode != 0
    assert result.stdout.strip() == ""
    lines = [line for line in result.stderr.splitlines() if not line.startswith("make: ***")]
    assert lines == [f"make deploy: {missing} is not set: make deploy {missing}=... (see README, Deployment)"]


def test_every_problem_is_one_line_both_the_deploys_and_the_functions_and_nothing_runs():
    # MAX_INSTANCES and DB_IAM_AUTH are the deploy's; the origin and the bucket, the functions'
    # (shared.core.config.check() of the environment each function is deployed with).
    result = make_deploy(
        DRY_RUN="1",
        **{**SETTINGS, "BUCKET": "Acme_Uploads", "INSTANCE_CONNECTION_NAME": "acme"},
        MAX_INSTANCES="many",
        DB_IAM_AUTH="ture",
        ALLOWED_ORIGINS="https://ok.example,acme.web.app",
    )
    assert result.returncode != 0 and result.stdout.strip() == ""
    lines = [line for line in result.stderr.splitlines() if not line.startswith("make: ***")]
    assert lines == [
        "make deploy: DB_IAM_AUTH='ture' is not a boolean: set it to true or false",
        "make deploy: MAX_INSTANCES='many' is not a positive whole number",
        "make deploy: INSTANCE_CONNECTION_NAME='acme' is malformed: use PROJECT:REGION:INSTANCE",
        "make deploy: ALLOWED_ORIGINS has 'acme.web.app', which is not an origin: use scheme://host[:port], "
        "comma-separated",
        "make deploy: STORAGE_BUCKET='Acme_Uploads' is not a bucket name: use lowercase letters, digits, - _ . "
        "such as my-project.appspot.com",
    ]


def test_the_functions_settings_are_checked_as_deployed_with_the_password_from_secret_manager():
    from devtools import deploy
    from shared.core import config

    settings, problems = deploy.problems(SETTINGS)
    assert problems == [] and deploy.functions_problems(settings) == []
    # The password is not in the functions' environment: --set-secrets gives it to them.
    assert "DB_PASS is not set: give the database password, or set DB_IAM_AUTH=true" in config.check(
        deploy.http_env(settings)
    )
    assert deploy.problems({**SETTINGS, "DB_IAM_AUTH": "true"})[1] == []
    # What the functions read is what the deploy gives them, not the deployer's environment.
    assert deploy.problems({**SETTINGS, "LOG_LEVEL": "verbose", "RETRY_AFTER_SECONDS": "0"})[1] == []


def test_the_default_plan_fits_the_default_database_with_room_to_spare():
    # 4 visitor functions x 5 instances x 3 + the rarely-called ones (rights, create_claim_code,
    # create_upload_ticket, researchers, run_maintenance) x 1 x 3 + the trigger's 5.
    settings, found = deploy.problems({**SETTINGS})
    assert found == []
    assert len(HTTP_FUNCTIONS) - len(FEW_INSTANCES_FUNCTIONS) == 4
    # get_researcher_actions, create_upload_ticket, complete_session, configure_experiment and exclude_session joined
    assert len(FEW_INSTANCES_FUNCTIONS) == 12
    researchers = [f for f in HTTP if f.callers == "researchers"]
    assert len(researchers) == 6  # their instances hold a pool of 2 (deploy.RESEARCHER_POOL)
    assert settings.connections_at_most() == (
        4 * 5 * 3 + (len(FEW_INSTANCES_FUNCTIONS) - len(researchers)) * 1 * 3 + len(researchers) * 1 * 2 + 5
    )
    assert settings.connections_at_most() <= 95


def test_more_connections_than_the_database_allows_is_refused():
    result = make_deploy(DRY_RUN="1", **SETTINGS, MAX_INSTANCES="50")
    assert result.returncode != 0 and result.stdout.strip() == ""
    assert "exceed DB_MAX_CONNECTIONS=100" in result.stderr
    assert make_deploy(DRY_RUN="1", **SETTINGS, MAX_INSTANCES="50", DB_MAX_CONNECTIONS="1000").returncode == 0


def test_a_region_other_than_the_hosting_rewrites_is_refused():
    result = make_deploy(DRY_RUN="1", **{**SETTINGS, "REGION": "us-central1"})
    assert result.returncode != 0
    assert "firebase.json's hosting rewrites use region europe-west1 but REGION=us-central1" in result.stderr
    assert "public/config.json's functionsRegion is europe-west1 but REGION=us-central1" in result.stderr


def test_run_maintenance_is_private_with_its_own_identity_and_invoked_by_the_scheduler_only():
    commands = printed_commands(GUEST_RETENTION_DAYS="30")
    argv = deploys(commands)["run_maintenance"]
    f, env = flags(argv), env_vars(argv)
    url = "https://europe-west1-acme-study.cloudfunctions.net/run_maintenance"
    assert "--no-allow-unauthenticated" in f and "--allow-unauthenticated" not in f
    assert f["--service-account"] == ["visitors-maintenance@acme-study.iam.gserviceaccount.com"]
    assert f["--max-instances"] == ["1"] and f["--timeout"] == ["900s"]
    assert f["--set-secrets"] == ["DB_PASS=visitors-db-erasure-password:latest"]
    assert {
        k: env[k]
        for k in ("DB_USER", "STORAGE_BUCKET", "GUEST_RETENTION_DAYS", "MAINTENANCE_INVOKER", "MAINTENANCE_AUDIENCE")
    } == {
        "DB_USER": "visitors-erasure",
        "STORAGE_BUCKET": "acme-study.appspot.com",
        "GUEST_RETENTION_DAYS": "30",
        "MAINTENANCE_INVOKER": "visitors-scheduler@acme-study.iam.gserviceaccount.com",
        "MAINTENANCE_AUDIENCE": url,
    }
    assert "GUEST_RETENTION_DAYS" not in env_vars(deploys(printed_commands())["run_maintenance"])  # off by default

    (binding,) = [a for a in commands if a[:3] == ["gcloud", "functions", "add-invoker-policy-binding"]]
    assert binding[3] == "run_maintenance"
    assert flags(binding)["--member"] == ["serviceAccount:visitors-scheduler@acme-study.iam.gserviceaccount.com"]
    (job,) = [a for a in commands if a[:6] == ["gcloud", "scheduler", "jobs", "create", "http", "visitors-maintenance"]]
    create, update = job[: job.index("||")], job[job.index("||") + 1 :]
    assert update[:5] == ["gcloud", "scheduler", "jobs", "update", "http"] and update[5:] == create[5:]
    j = flags(create)
    assert create[5] == "visitors-maintenance"
    assert (j["--uri"], j["--oidc-token-audience"], j["--http-method"]) == ([url], [url], ["POST"])
    assert j["--oidc-service-account-email"] == ["visitors-scheduler@acme-study.iam.gserviceaccount.com"]
    assert j["--location"] == ["europe-west1"] and j["--schedule"] == ["17 * * * *"]
    # After the function exists (the binding needs it), before Firebase.
    order = [commands.index(argv), commands.index(binding), commands.index(job), len(commands) - 1]
    assert order == sorted(order)


def test_the_audit_runs_daily_as_its_own_job_calling_run_maintenance_with_task_audit():
    commands = printed_commands()
    url = "https://europe-west1-acme-study.cloudfunctions.net/run_maintenance"
    (job,) = [a for a in commands if a[:6] == ["gcloud", "scheduler", "jobs", "create", "http", "visitors-audit"]]
    create, update = job[: job.index("||")], job[job.index("||") + 1 :]
    assert update[:6] == ["gcloud", "scheduler", "jobs", "update", "http", "visitors-audit"]
    assert update[6:] == create[6:]
    j = flags(create)
    assert (j["--uri"], j["--oidc-token-audience"], j["--http-method"]) == ([f"{url}?task=audit"], [url], ["POST"])
    assert j["--oidc-service-account-email"] == ["visitors-scheduler@acme-study.iam.gserviceaccount.com"]
    assert j["--schedule"] == ["43 3 * * *"] and j["--time-zone"] == ["Etc/UTC"]
    (moved,) = [a for a in printed_commands(AUDIT_SCHEDULE="5 1 * * *") if "visitors-audit" in a]
    assert flags(moved[: moved.index("||")])["--schedule"] == ["5 1 * * *"]


def test_each_function_is_deployed_as_its_row_says():
    """Identity, instance cap, timeout, access and App Check come from the function's row alone."""
    # DB_MAX_CONNECTIONS: these caps need 105 connections; the budget is another test's.
    commands = printed_commands(
        APP_CHECK="monitor",
        MAX_INSTANCES="4",
        RIGHTS_MAX_INSTANCES="2",
        TRIGGER_MAX_INSTANCES="3",
        DB_MAX_CONNECTIONS="200",
    )
    deployed = deploys(commands)
    accounts = {
        "functions": "visitors-functions",
        "erasure": "visitors-erasure",
        "maintenance": "visitors-maintenance",
        "uploads": "visitors-uploads",
    }
    caps = {"MAX_INSTANCES": "4", "RIGHTS_MAX_INSTANCES": "2", "TRIGGER_MAX_INSTANCES": "3"}
    for row in FUNCTIONS:
        f, env = flags(deployed[row.name]), env_vars(deployed[row.name])
        assert f["--service-account"] == [f"{accounts[row.identity]}@acme-study.iam.gserviceaccount.com"], row
        assert f["--max-instances"] == [caps[row.max_instances]] and f["--timeout"] == [row.timeout], row
        assert ("--trigger-http" in f) == (row.kind == "http") and ("--retry" in f) == (row.kind == "storage"), row
        assert ("--no-allow-unauthenticated" in f) == row.private, row
        assert ("--allow-unauthenticated" in f) == (row.kind == "http" and not row.private), row
        assert env.get("APP_CHECK") == ("monitor" if row.app_check else None), row
        assert ("GUEST_LIMIT_PER_HOUR" in env) == row.guest_limit, row
        assert ("SESSION_LIMIT_PER_HOUR" in env) == row.guest_limit, row
        assert ("UPLOAD_TICKETS" in env) == ("UPLOAD_TICKET_TTL_SECONDS" in env) == row.upload_tickets, row
    # The scheduler waits for run_maintenance as long as its row lets it run.
    jobs = [a for a in commands if a[:5] == ["gcloud", "scheduler", "jobs", "create", "http"]]
    (scheduled,) = [row for row in FUNCTIONS if row.callers == "scheduler"]
    assert [flags(job[: job.index("||")])["--attempt-deadline"] for job in jobs] == [[scheduled.timeout]] * 2


def test_create_session_gets_the_guest_limit_and_its_key_from_secret_manager():
    argv = deploys(printed_commands(GUEST_LIMIT_PER_HOUR="1000", GUEST_LIMIT_KEY_SECRET="limit-key"))["create_session"]
    assert env_vars(argv)["GUEST_LIMIT_PER_HOUR"] == "1000"
    assert flags(argv)["--set-secrets"] == [
        "DB_PASS=visitors-db-password:latest,GUEST_LIMIT_KEY=limit-key:latest,"
        "PARTICIPANT_KEY=visitors-participant-key:latest"
    ]
    assert env_vars(deploys(printed_commands())["create_session"])["GUEST_LIMIT_PER_HOUR"] == "200"


def test_create_session_gets_the_session_limit():
    assert (
        env_vars(deploys(printed_commands(SESSION_LIMIT_PER_HOUR="50"))["create_session"])["SESSION_LIMIT_PER_HOUR"]
        == "50"
    )
    assert env_vars(deploys(printed_commands())["create_session"])["SESSION_LIMIT_PER_HOUR"] == "300"


def test_upload_tickets_sign_and_verify_with_one_key_from_secret_manager():
    """create_upload_ticket signs and the trigger verifies: both get the key, the mode and the lifetime."""
    assert set(TICKETED) == {"create_upload_ticket", "on_upload_finalized"}
    deployed = deploys(
        printed_commands(UPLOAD_TICKETS="monitor", UPLOAD_TICKET_TTL_SECONDS="600", UPLOAD_TICKET_KEY_SECRET="t-key")
    )
    for name in TICKETED:
        assert flags(deployed[name])["--set-secrets"][0].endswith(",UPLOAD_TICKET_KEY=t-key:latest")
        env = env_vars(deployed[name])
        assert (env["UPLOAD_TICKETS"], env["UPLOAD_TICKET_TTL_SECONDS"]) == ("monitor", "600")
    defaults = env_vars(deploys(printed_commands())["on_upload_finalized"])
    assert (defaults["UPLOAD_TICKETS"], defaults["UPLOAD_TICKET_TTL_SECONDS"]) == ("enforce", "3600")


def test_a_bad_upload_tickets_mode_is_refused_before_anything_runs():
    _, problems = deploy.problems({**SETTINGS, "UPLOAD_TICKETS": "sometimes"})
    assert any(line.startswith("UPLOAD_TICKETS='sometimes' is not a mode") for line in problems), problems


# The Cloud SDK parses every printed gcloud command, of `make deploy` and of `make setup`: a misspelt
# flag or a bad value fails there, before any account is needed (an empty configuration has none).
REDIRECTIONS = {">/dev/null", "2>/dev/null", "2>&1"}


def gcloud_commands(line: list[str]) -> list[list[str]]:
    """The gcloud commands of one printed shell line: each side of `||` and `|`, and each `$(gcloud ...)`
    inside an argument (a token, a password or the storage service agent read when the line runs)."""
    pieces, piece = [], []
    for token in line:
        if token in ("||", "|"):
            pieces.append(piece)
            piece = []
        elif token not in REDIRECTIONS:
            piece.append(token)
    pieces.append(piece)
    nested = [shlex.split(inner) for token in line for inner in re.findall(r"\$\((gcloud [^)]*)\)", token)]
    return [argv for argv in pieces + nested if argv[:1] == ["gcloud"]]


def make_setup(**variables: str) -> subprocess.CompletedProcess:
    env = {name: os.environ[name] for name in ("PATH", "HOME", "LANG") if name in os.environ}
    arguments = [f"{name}={value}" for name, value in variables.items()]
    return subprocess.run(
        ["make", "--no-print-directory", "setup", *arguments],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def printed_setup(**variables: str) -> list[list[str]]:
    """`make setup DRY_RUN=1`'s command lines (the lines starting with # say what each does)."""
    result = make_setup(DRY_RUN="1", PROJECT="acme-study", REGION="europe-west1", **variables)
    assert result.returncode == 0, result.stderr
    return [shlex.split(line) for line in result.stdout.splitlines() if line.strip() and not line.startswith("#")]


if shutil.which("gcloud"):

    def test_gcloud_accepts_every_printed_command():
        printed = printed_commands()
        commands = [argv for argv in printed if argv[:3] == ["gcloud", "functions", "deploy"]]
        # and run_maintenance's invoker binding and scheduler job (create, and the update after "||")
        for argv in printed:
            if argv[:2] == ["gcloud", "scheduler"] or argv[:3] == ["gcloud", "functions", "add-invoker-policy-binding"]:
                commands += [argv[: argv.index("||")], argv[argv.index("||") + 1 :]] if "||" in argv else [argv]
        # and every gcloud command of `make setup`, with passwords and with IAM database authentication
        # (each check, each create, each command substitution).
        setup = [
            argv
            for variables in ({}, {"DB_IAM_AUTH": "true", "TIER": "db-g1-small"})
            for line in printed_setup(**variables)
            for argv in gcloud_commands(line)
        ]
        assert len(setup) > 40
        commands += [list(argv) for argv in dict.fromkeys(map(tuple, setup))]  # each once
        with tempfile.TemporaryDirectory() as config:
            env = {
                "PATH": os.environ["PATH"],
                "CLOUDSDK_CONFIG": config,
                "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
                "HOME": config,
            }

            def parse(argv: list[str]) -> tuple[list[str], subprocess.CompletedProcess]:
                return argv, subprocess.run(
                    argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
                )

            with ThreadPoolExecutor(2) as pool:  # the machine's two cores
                results = list(pool.map(parse, commands + [[*argv[:-1], "--no-such-flag"] for argv in commands[:1]]))
            for argv, result in results:
                assert result.returncode != 0  # no account: nothing can be deployed from here
                if argv[-1] == "--no-such-flag":
                    assert "unrecognized arguments" in result.stderr
                else:
                    assert "unrecognized arguments" not in result.stderr and "Bad syntax" not in result.stderr, argv
                    assert "active account" in result.stderr, (argv, result.stderr)


def test_the_upload_leaves_out_what_is_not_deployed():
    ignored = {
        line.strip()
        for line in (ROOT / ".gcloudignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".venv/", "node_modules/", ".local/", "tests/", "devtools/", ".git/"} <= ignored
    assert not {"main.py", "functions/", "shared/", "requirements.txt"} & ignored


def test_app_check_is_given_to_the_visitor_facing_functions_only_when_on():
    deployed = deploys(printed_commands())
    assert not any("APP_CHECK" in env_vars(deployed[name]) for name in HTTP_FUNCTIONS)
    deployed = deploys(printed_commands(APP_CHECK="enforce"))
    for name in HTTP_FUNCTIONS:
        assert env_vars(deployed[name]).get("APP_CHECK") == ("enforce" if name in APP_CHECK_FUNCTIONS else None), name


def test_a_bad_app_check_mode_or_the_test_only_keys_url_is_refused_and_nothing_runs():
    result = make_deploy(DRY_RUN="1", **SETTINGS, APP_CHECK="on", APP_CHECK_JWKS_URL="http://127.0.0.1:1/jwks")
    assert result.returncode != 0 and result.stdout.strip() == ""
    lines = [line for line in result.stderr.splitlines() if not line.startswith("make: ***")]
    assert lines == [
        "make deploy: APP_CHECK_JWKS_URL is for tests only: unset it to deploy (deployed functions fetch Google's "
        "App Check keys)",
        "make deploy: APP_CHECK='on' is not a mode: use one of off, monitor, enforce",
    ]


def test_a_dry_run_needs_only_the_python_environment(tmp_path):
    """On a clone without node_modules, `make deploy DRY_RUN=1` prints the commands without
    running npm (which takes minutes on a fresh clone). The clone is the repository's tracked
    files (mtimes kept, as a checkout has them older than the environment) and this
    repository's .venv."""
    clone = tmp_path / "clone"
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, tracked.decode().split("\0")):
        if (ROOT / name).is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, clone / name)
    (clone / ".venv").symlink_to(ROOT / ".venv")
    env = {name: os.environ[name] for name in ("PATH", "HOME", "LANG") if name in os.environ}
    arguments = [f"{name}={value}" for name, value in SETTINGS.items()]
    result = subprocess.run(
        ["make", "--no-print-directory", "deploy", "DRY_RUN=1", *arguments],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "gcloud functions deploy create_session" in result.stdout
    assert "npm" not in result.stdout.split("gcloud", 1)[0]  # nothing ran before the printed commands
    assert not (clone / "node_modules").exists()


def test_prolific_completion_from_the_server_gets_its_token_its_url_and_a_job_every_minute():
    """SPEC §14.5: only with PROLIFIC_API_TOKEN_SECRET do complete_session and run_maintenance get
    the token (from Secret Manager), and the deliveries job exist."""
    assert not [a for a in printed_commands() if "visitors-deliveries" in a]
    assert all("PROLIFIC_API_TOKEN" not in " ".join(argv) for argv in deploys(printed_commands()).values())
    commands = printed_commands(PROLIFIC_API_TOKEN_SECRET="prolific-token", PROLIFIC_API_URL="https://api.prolific.com")
    for name, argv in deploys(commands).items():
        given = name in ("complete_session", "run_maintenance")
        assert ("PROLIFIC_API_TOKEN=prolific-token:latest" in flags(argv)["--set-secrets"][0]) == given, name
        assert env_vars(argv).get("PROLIFIC_API_URL") == ("https://api.prolific.com" if given else None), name
        assert "PROLIFIC_API_TOKEN" not in env_vars(argv)
    url = "https://europe-west1-acme-study.cloudfunctions.net/run_maintenance"
    (job,) = [a for a in commands if a[:6] == ["gcloud", "scheduler", "jobs", "create", "http", "visitors-deliveries"]]
    j = flags(job[: job.index("||")])
    assert (j["--uri"], j["--oidc-token-audience"], j["--schedule"]) == (
        [f"{url}?task=deliveries"],
        [url],
        ["* * * * *"],
    )
