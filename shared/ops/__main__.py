"""`python -m shared.ops COMMAND ...`: every command of shared/ops/cli.py under one name."""

import sys

from shared.ops.cli import main

sys.exit(main())
