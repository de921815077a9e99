"""Security tests against the running stack: tokens, oracles, hostile input, least privilege."""
