"""Studies (SPEC §14): configured experiments, admission and conditions, completion, platforms."""
