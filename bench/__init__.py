"""Benchmarks: `make bench` runs each module listed in the Makefile's BENCHMARKS."""
