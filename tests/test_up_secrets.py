"""`gridmon up` shows the secrets it generates once, on a terminal, and never through logging."""

from __future__ import annotations

import io
import logging
import os

import pytest

from gridmon.up.run import announce_secrets

SECRET = "admin token (Authorization: Bearer …): s3cr3t-value-0123456789"


def _drain(fd: int) -> str:
    """Everything the terminal received (a pty in canonical mode hands it over line by line)."""
    import select

    chunks = []
    while select.select([fd], [], [], 0.5)[0]:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the other side is closed and everything was read
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode()


def test_secrets_are_shown_once_on_a_terminal(caplog: pytest.LogCaptureFixture) -> None:
    leader, follower = os.openpty()
    with os.fdopen(follower, "w", closefd=True) as terminal, caplog.at_level(logging.DEBUG):
        announce_secrets([SECRET], terminal)
    shown = _drain(leader)
    os.close(leader)
    assert shown.count("s3cr3t-value-0123456789") == 1
    assert "s3cr3t" not in caplog.text


def test_secrets_are_not_written_where_output_is_kept(caplog: pytest.LogCaptureFixture) -> None:
    kept = io.StringIO()  # a redirect to a file, a journal: not a terminal
    with caplog.at_level(logging.DEBUG):
        announce_secrets([SECRET], kept)
    assert "s3cr3t" not in kept.getvalue() and ".env" in kept.getvalue()
    assert "s3cr3t" not in caplog.text
