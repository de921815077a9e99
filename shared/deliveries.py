"""`python -m shared.deliveries`: list or retry the Prolific completions made from the server (docs/operations.md).

The command is in shared/ops/cli.py."""

if __name__ == "__main__":
    import sys

    from shared.ops.cli import run

    sys.exit(run("deliveries"))
