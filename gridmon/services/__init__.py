"""Starting local service processes (private brokers for tests and benchmarks, embedded mode)."""
