"""Ground truth of injected faults as JSON lines: one `Fault.to_json()` per line.

The live simulator appends a line when a fault ends (so every line is complete) and flushes it
at once, so a scorer reading the file while the simulator runs sees every finished fault.
Appending rather than truncating keeps the truth of earlier runs against the same database.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

from gridmon.simulator.catalogue import Fault


class TruthWriter:
    """Appends faults to a JSONL file (parent directories are created)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a", encoding="utf-8")
        self.written = 0

    def write(self, fault: Fault) -> None:
        self._file.write(fault.to_json() + "\n")
        self._file.flush()
        self.written += 1

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> TruthWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def read_truth(path: Path | str) -> list[Fault]:
    """Every fault in a truth file, in file order (blank lines are skipped)."""
    with Path(path).open(encoding="utf-8") as handle:
        return [Fault.from_json(line) for line in handle if line.strip()]
