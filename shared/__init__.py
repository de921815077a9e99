"""Code shared by every deployed function: config, database, auth, HTTP helpers, domain logic."""
