"""A private redis-server process on its own port (tests that stop Redis, benchmarks)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Self

from gridmon.services.mosquitto import ServerProcess, wait_for_port


class RedisProcess(ServerProcess):
    """redis-server without persistence on 127.0.0.1:<port>."""

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> Self:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not Path(binary).exists():
            raise RuntimeError("redis-server binary not found (install Debian package 'redis-server')")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        args += ["--dir", str(self.data_dir)]
        log_file = (self.data_dir / "redis.log").open("ab")
        self.proc = subprocess.Popen(args, stdout=log_file, stderr=log_file)
        if not wait_for_port(self.port):
            self.stop()
            raise RuntimeError(f"redis-server did not start on port {self.port}")
        return self
