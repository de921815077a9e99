"""`make setup DRY_RUN=1`: the one-time project setup, printed by running make itself. (Each gcloud
command it prints also goes through the Cloud SDK's parser: test_deploy.test_gcloud_accepts_every_printed_command.)"""

from __future__ import annotations

import shlex

from devtools import setup
from tests.deploy.test_deploy import make_deploy, make_setup, printed_setup

# The commands that create something: each must be guarded by a check of what it would create.
CREATES = (
    ("gcloud", "firestore", "databases", "create"),
    ("gcloud", "storage", "buckets", "create"),
    ("gcloud", "sql", "instances", "create"),
    ("gcloud", "sql", "databases", "create"),
    ("gcloud", "secrets", "create"),
    ("gcloud", "iam", "service-accounts", "create"),
    ("gcloud", "iam", "roles", "create"),
    ("gcloud", "sql", "users", "create"),
    ("npx", "firebase", "projects:addfirebase"),
    ("npx", "firebase", "apps:create"),
    ("gcloud", "sql", "instances", "patch"),
)


def creating(line: list[str]) -> bool:
    """A create (or the one patch, which restarts the instance), or Firebase's addFirebase of the bucket."""
    return any(tuple(line[i : i + len(c)]) == c for c in CREATES for i in range(len(line))) or any(
        token.endswith(":addFirebase") for token in line
    )


def test_every_create_is_guarded_by_a_check_and_everything_else_only_sets():
    for variables in ({}, {"DB_IAM_AUTH": "true"}):
        lines = printed_setup(**variables)
        for line in lines:
            if creating(line):
                # CHECK >/dev/null 2>&1 || CREATE, or CHECK | grep -qF WHAT || CREATE: the create runs only
                # when the check fails, and the check comes first.
                assert "||" in line, line
                assert not creating(line[: line.index("||")]), line
            else:
                assert "||" not in line, line
                assert line[:3] in (
                    ["gcloud", "auth", "print-access-token"],
                    ["gcloud", "services", "enable"],
                    ["gcloud", "projects", "add-iam-policy-binding"],
                    ["gcloud", "storage", "buckets"],
                    ["gcloud", "secrets", "add-iam-policy-binding"],
                    ["gcloud", "sql", "users"],
                    ["curl", "-fsS", "-o"],
                ), line
        assert len(lines) == len(
            setup.steps(setup.Settings.read({"PROJECT": "acme-study", "REGION": "europe-west1", **variables})[0])
        )


def test_the_steps_say_how_they_are_idempotent():
    result = make_setup(DRY_RUN="1", PROJECT="acme-study", REGION="europe-west1")
    notes = [line for line in result.stdout.splitlines() if line.startswith("# ") and line.endswith(")")]
    assert all(note.rsplit("(", 1)[1] in ("CHECK)", "SETS)", "READS)") for note in notes)
    assert notes[0] == "# gcloud is signed in (READS)"  # before anything is made


def test_the_project_s_resources_are_made_in_the_region_with_the_defaults():
    lines = [shlex.join(line) for line in printed_setup()]
    text = "\n".join(lines)
    assert "gcloud firestore databases create --location=europe-west1 --project=acme-study" in text
    assert (
        "gcloud storage buckets create gs://acme-study-uploads --location=europe-west1 "
        "--uniform-bucket-level-access --project=acme-study"
    ) in text
    assert (
        "gcloud sql instances create visitors --database-version=POSTGRES_16 --edition=ENTERPRISE "
        "--tier=db-custom-1-3840 --region=europe-west1 --project=acme-study"
    ) in text
    for account in setup.ACCOUNTS:
        assert f"gcloud iam service-accounts create {account} --project=acme-study" in text
    for secret, _ in setup.SECRETS:
        assert f"gcloud secrets create {secret} --data-file=- --project=acme-study" in text
    assert "cloud_iam_service_account" not in text  # passwords by default, as make deploy


def test_a_chosen_bucket_instance_and_tier_and_iam_database_auth():
    text = "\n".join(
        shlex.join(line)
        for line in printed_setup(
            BUCKET="gs://acme.appspot.com", INSTANCE="study", TIER="db-g1-small", DB_IAM_AUTH="true"
        )
    )
    assert "gs://acme.appspot.com" in text and "acme-study-uploads" not in text
    assert "--tier=db-g1-small" in text and "--database-flags=cloudsql.iam_authentication=on" in text
    for account in setup.IAM_DB_USERS:
        assert (
            f"gcloud sql users create {account}@acme-study.iam --instance=study "
            "--type=cloud_iam_service_account --project=acme-study"
        ) in text


def test_no_password_is_ever_printed_they_are_made_and_read_inside_the_line():
    result = make_setup(DRY_RUN="1", PROJECT="acme-study", REGION="europe-west1")
    (set_password,) = [line for line in result.stdout.splitlines() if "set-password" in line]
    assert set_password.endswith(
        '"--password=$(gcloud secrets versions access latest '
        '--secret=visitors-db-migrator-password --project=acme-study)"'
    )
    for line in result.stdout.splitlines():
        if "gcloud secrets create" in line:
            assert " || openssl rand -base64 " in line and " | tr -d '\\n' | gcloud secrets create " in line


def test_a_missing_variable_is_one_line_naming_it_and_nothing_runs():
    result = make_setup(DRY_RUN="1", PROJECT="acme-study")
    assert result.returncode != 0 and result.stdout == ""
    lines = [line for line in result.stderr.splitlines() if not line.startswith("make: ***")]
    assert lines == ["make setup: REGION is not set: make setup REGION=... (see docs/deployment.md)"]


def test_the_deploy_it_ends_with_is_one_make_deploy_accepts():
    result = make_setup(DRY_RUN="1", PROJECT="acme-study", REGION="europe-west1")
    last = result.stdout.splitlines()[-1]
    assert last.startswith("# then: make deploy ")
    variables = dict(arg.split("=", 1) for arg in shlex.split(last.removeprefix("# then: make deploy ")))
    assert variables["TRIGGER_LOCATION"] == "europe-west1"  # the bucket setup made, in the region
    deployed = make_deploy(DRY_RUN="1", **variables)
    assert deployed.returncode == 0, deployed.stderr


def test_token_checking_needs_one_permission_and_no_broader_auth_role():
    """The revocation check reads users (firebaseauth.users.get): a project role with that one permission,
    granted to the two identities that verify ID tokens, instead of roles/firebaseauth.viewer."""
    lines = printed_setup()
    (line,) = [line for line in lines if "roles" in line and "create" in line and "iam" in line]
    check, create = line[: line.index("||")], line[line.index("||") + 1 :]
    assert check[:5] == ["gcloud", "iam", "roles", "describe", "visitorsTokenChecker"]
    assert create[:5] == ["gcloud", "iam", "roles", "create", "visitorsTokenChecker"]
    assert [a for a in create if a.startswith("--permissions=")] == ["--permissions=firebaseauth.users.get"]
    granted = {
        (next(a for a in line if a.startswith("--member=")), next(a for a in line if a.startswith("--role=")))
        for line in lines
        if "add-iam-policy-binding" in line and "projects" in line
    }
    checker = "--role=projects/acme-study/roles/visitorsTokenChecker"
    assert {member for member, role in granted if role == checker} == {
        "--member=serviceAccount:visitors-functions@acme-study.iam.gserviceaccount.com",
        "--member=serviceAccount:visitors-erasure@acme-study.iam.gserviceaccount.com",
    }
    assert not [role for _, role in granted if "firebaseauth" in role]


def test_only_the_identities_that_write_firestore_get_a_firestore_role():
    """visitors-functions reads no Firestore (uploads come from PostgreSQL, SPEC §16): no datastore
    role; the trigger, erasure and maintenance write it (roles/datastore.user)."""
    granted = {
        (next(a for a in line if a.startswith("--member=")), next(a for a in line if a.startswith("--role=")))
        for line in printed_setup()
        if "add-iam-policy-binding" in line and "projects" in line
    }
    account = "--member=serviceAccount:visitors-{}@acme-study.iam.gserviceaccount.com"
    assert {(member, role) for member, role in granted if "datastore" in role} == {
        (account.format(who), "--role=roles/datastore.user") for who in ("uploads", "erasure", "maintenance")
    }
