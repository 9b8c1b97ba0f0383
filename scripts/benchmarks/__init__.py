"""Benchmarks run by scripts/benchmark.py: one module per subject, each with main(argv).

Tooling beside the scripts, not part of the installed package: each module imports
the installed ``osc_tf`` and runs its child processes as ``python <this file>``.
"""
