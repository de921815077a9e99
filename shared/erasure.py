"""`python -m shared.erasure`: resume or report pending withdrawals (docs/operations.md).

The command is in shared/ops/cli.py."""

if __name__ == "__main__":
    import sys

    from shared.ops.cli import run

    sys.exit(run("erasure"))
