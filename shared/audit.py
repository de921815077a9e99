"""`python -m shared.audit [--repair] [--min-age SECONDS]`: check that PostgreSQL, the bucket and
Firestore agree (docs/operations.md). The command is in shared/ops/cli.py."""

if __name__ == "__main__":
    import sys

    from shared.ops.cli import run

    sys.exit(run("audit"))
