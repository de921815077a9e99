"""Participants' rights: withdrawal (erasure) and access to their own data."""
