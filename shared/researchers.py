"""`python -m shared.researchers`: grant, revoke and list researchers (docs/operations.md).

The command is in shared/ops/cli.py."""

if __name__ == "__main__":
    import sys

    from shared.ops.cli import run

    sys.exit(run("researchers"))
