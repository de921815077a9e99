"""`python -m shared.experiments`: set, show and list experiments' configurations, and exclude a
session (docs/researchers.md).

The command is in shared/ops/cli.py."""

if __name__ == "__main__":
    import sys

    from shared.ops.cli import run

    sys.exit(run("experiments"))
