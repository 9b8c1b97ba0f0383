"""Benchmarks run by scripts/benchmark.py: one module per subject, each with main(argv)."""
