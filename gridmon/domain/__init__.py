"""Pure domain code: reading model and validation (no I/O)."""
