"""`python -m gridmon.cli.main …` = the `gridmon` command (used for child processes)."""

from gridmon.cli import main

if __name__ == "__main__":
    main()
