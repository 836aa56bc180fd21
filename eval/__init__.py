"""Benchmark evaluation (later issues)."""
