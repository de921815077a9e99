"""The local stack (embedded PostgreSQL, emulators, all functions on one port).

Development and test tooling only: nothing here is deployed.
"""
