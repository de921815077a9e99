"""`python -m shared.import_uploads`: bring the uploads Firestore recorded before PostgreSQL had
table `uploads` into it, once (docs/operations.md).

The command is in shared/ops/cli.py."""

if __name__ == "__main__":
    import sys

    from shared.ops.cli import run

    sys.exit(run("import_uploads"))
