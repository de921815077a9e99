"""What `import main` loads: every cold instance of every function pays for it before it
serves (bench/README.md: at most 1.25x what functions_framework's own import takes). What
is listed here is imported on first use instead."""

import os
import subprocess
import sys
from pathlib import Path

from shared.web import models

ROOT = Path(__file__).resolve().parents[2]

ON_FIRST_USE = (
    "pydantic",
    "pydantic_core",
    "shared.web.bodies",  # when a body is first validated (shared.web.models)
    "sqlalchemy",
    "pg8000",  # when the engine is first made (shared.core.db)
    "pgserver",  # the local stack's, never the functions'
    # Firebase, Firestore, Storage, Google's auth and the Cloud SQL connector: clients on first use
    # (functions_framework itself loads google.cloud.functions).
    "firebase_admin",
    "google.auth",
    "google.oauth2",
    "google.api_core",
    "google.cloud.firestore",
    "google.cloud.storage",
    "google.cloud.sql",
    "argparse",
    "shared.ops",  # the command lines (python -m shared.erasure ...: shared/ops/cli.py)
    "concurrent.futures",  # the Storage part of an erasure
    # The shared/ modules of every function but create_session, submit_response and get_visitor
    # (functions/__init__.py).
    "shared.rights",
    "shared.studies.completion",
    "shared.studies.deliveries",
    "shared.research",
    "shared.visitors.claim_codes",
    "shared.visitors.registration",
    "shared.visitors.uploads",
    "shared.web.invoker",
    "shared.core.stores",
)


def test_importing_main_needs_no_settings_and_leaves_these_to_first_use():
    code = "import sys, main; print('\\n'.join(sorted(sys.modules)))"
    # No settings: nothing connects or reads DATABASE_URL at import (clients are made on first use).
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    loaded = result.stdout.split()
    early = [name for name in loaded if any(name == lazy or name.startswith(lazy + ".") for lazy in ON_FIRST_USE)]
    assert early == []


def test_the_body_models_are_named_through_shared_models():
    from pydantic import BaseModel

    from shared.web import bodies

    for name in models.BODIES:
        assert getattr(models, name) is getattr(bodies, name)
    assert issubclass(models.NewSession, BaseModel) and models.NewSession.model_config["defer_build"]
    assert not hasattr(models, "NoSuchModel")


RACE = """
import threading
from shared.web import models

SESSION = "3f0c8a4e-5b7d-4c1e-9a2b-6d8e0f1a2b3c"
bodies = [(models.NewSession, {"sessionId": SESSION, "experimentId": "e", "metadata": {"a": 1}}),
          (models.NewResponse, {"sessionId": SESSION, "level": 3, "data": [1]}),
          (models.Registration, {"displayName": "Ada", "claimCode": "ABCD-EFGH"})]
start, refused = threading.Barrier(12), []

def first_request(model, body):
    start.wait()
    try:
        models.parse(model, body)
    except Exception as error:
        refused.append(repr(error))

threads = [threading.Thread(target=first_request, args=bodies[i % 3]) for i in range(12)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(refused)
"""


def test_a_model_s_first_validations_at_once_all_succeed():
    """A model is built on its first validation (defer_build): threads that validate its first
    bodies at once must each get the built model, never a half-built one or Body's."""
    for _ in range(3):
        result = subprocess.run([sys.executable, "-c", RACE], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "[]"
