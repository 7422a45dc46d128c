"""`gridmon up`: run the whole system in the foreground (what `make run` calls)."""
