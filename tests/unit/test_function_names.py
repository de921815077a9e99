"""One list of the deployed functions (functions.FUNCTIONS, one row each), and everything that names them agrees."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import main
from functions import BY_NAME, FUNCTIONS, HTTP, NAMES, Function

ROOT = Path(__file__).resolve().parent.parent.parent


def test_main_exports_each_function_from_its_own_module_and_nothing_else():
    assert main.__all__ == list(NAMES)
    exported = {
        name
        for name, value in vars(main).items()
        if callable(value) and getattr(value, "__module__", "").startswith("functions.")
    }
    assert exported == set(NAMES)
    for name in exported:
        assert getattr(main, name).__module__ == f"functions.{name}" == BY_NAME[name].module


def test_every_function_module_has_a_row_and_every_row_its_module():
    modules = {path.stem for path in (ROOT / "functions").glob("*.py") if path.stem != "__init__"}
    assert modules == set(NAMES)


def test_functions_framework_knows_each_row_by_its_kind():
    from functions_framework import _function_registry

    for row in FUNCTIONS:
        assert _function_registry.REGISTRY_MAP[row.name] == {"http": "http", "storage": "cloudevent"}[row.kind]


def test_the_hosting_rewrites_name_exactly_the_public_http_functions():
    """run_maintenance is private (Cloud Scheduler calls its own URL): no /api rewrite reaches it."""
    rewrites = json.loads((ROOT / "firebase.json").read_text())["hosting"]["rewrites"]
    assert sorted(r["function"]["functionId"] for r in rewrites) == sorted(f.name for f in HTTP if not f.private)
    assert all(r["source"] == f"/api/{r['function']['functionId']}" for r in rewrites)


def test_exactly_the_rows_with_app_check_check_it():
    """The App Check flag is the row's, and only the row's: what main.py serves checks App Check
    exactly when its row says so, and only functions the visitors' page calls may say so."""
    checking = {f.name for f in HTTP if getattr(main, f.name).app_check}
    assert checking == {f.name for f in FUNCTIONS if f.app_check}
    assert checking == {f.name for f in HTTP if f.callers == "visitors"}  # SPEC §12: the visitor-facing ones
    assert not checking & {"get_study_stats", "export_data", "erase_visitor", "run_maintenance"}
    assert not hasattr(main.on_upload_finalized, "app_check")
    # No function module says it itself: a handler is served by its row (Function.entry_point).
    for path in (ROOT / "functions").glob("*.py"):
        assert "app_check=" not in path.read_text() or path.stem == "__init__", path


def test_each_http_function_answers_its_row_s_method_only():
    from functions_framework import create_app

    for row in HTTP:
        other = {"POST": "GET", "GET": "POST"}.get(row.method, "PUT")  # "GET, POST": both are its own
        client = create_app(row.name, str(ROOT / "main.py")).test_client()
        answer = client.open("/", method=other)
        assert answer.status_code == 405, (row.name, answer.status_code)
        assert answer.headers["Allow"] == f"{row.method}, OPTIONS"


@pytest.mark.parametrize(
    "row, problem",
    [
        (dict(name="f", method=None), "an HTTP function answers GET or POST"),
        (dict(name="f", method="PUT"), "an HTTP function answers GET or POST"),
        (dict(name="f", method="GET", callers="researchers", app_check=True), "from the visitors' page only"),
        (dict(name="f", method="GET", identity="root"), "identity='root' is not one of"),
        (dict(name="f", method="GET", max_instances="LOTS"), "max_instances='LOTS' is not one of"),
        (dict(name="f", method=None, kind="storage"), "only it, is called by storage events"),
    ],
)
def test_a_row_that_could_not_be_deployed_as_it_says_is_refused(row, problem):
    with pytest.raises(ValueError, match=problem):
        Function(**row)
