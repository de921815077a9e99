"""One list of the deployed functions (functions/__init__.py), and everything that names them agrees."""

from __future__ import annotations

import json
from pathlib import Path

import main
from functions import HTTP_FUNCTIONS, PRIVATE_FUNCTIONS, STORAGE_TRIGGER

ROOT = Path(__file__).resolve().parent.parent.parent


def test_main_exports_each_function_from_its_own_module_and_nothing_else():
    assert main.__all__ == [*HTTP_FUNCTIONS, STORAGE_TRIGGER]
    exported = {name for name, value in vars(main).items()
                if callable(value) and getattr(value, "__module__", "").startswith("functions.")}
    assert exported == {*HTTP_FUNCTIONS, STORAGE_TRIGGER}
    for name in exported:
        assert getattr(main, name).__module__ == f"functions.{name}"


def test_the_hosting_rewrites_name_exactly_the_public_http_functions():
    """run_maintenance is private (Cloud Scheduler calls its own URL): no /api rewrite reaches it."""
    rewrites = json.loads((ROOT / "firebase.json").read_text())["hosting"]["rewrites"]
    assert sorted(r["function"]["functionId"] for r in rewrites) == sorted(set(HTTP_FUNCTIONS) - set(PRIVATE_FUNCTIONS))
    assert all(r["source"] == f"/api/{r['function']['functionId']}" for r in rewrites)


def test_exactly_the_visitor_facing_functions_check_app_check():
    from functions import APP_CHECK_FUNCTIONS, RESEARCH_FUNCTIONS

    checking = {name for name in HTTP_FUNCTIONS if getattr(main, name).app_check}
    assert checking == set(APP_CHECK_FUNCTIONS)
    assert not checking & {*RESEARCH_FUNCTIONS, "erase_visitor"}
