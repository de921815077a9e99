"""Benchmarks for the visitor-sessions backend: `make bench` (see bench/README.md)."""
