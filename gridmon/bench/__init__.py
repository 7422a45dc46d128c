"""Benchmarks: commands that measure the real paths and print one JSON line last."""
