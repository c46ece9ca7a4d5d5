"""Benchmarks kept as runnable code: `sluice bench ...`."""
