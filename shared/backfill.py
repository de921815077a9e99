"""`python -m shared.backfill`: number the visitors that numbering missed (docs/operations.md).

The command is in shared/ops/cli.py."""

if __name__ == "__main__":
    import sys

    from shared.ops.cli import run

    sys.exit(run("backfill"))
