"""What operators run: migrations, the backfill, maintenance, and the one command-line entry."""
