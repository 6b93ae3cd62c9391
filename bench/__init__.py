"""Benchmarks that print tables (docs/benchmarks.md); run from the repository root."""
