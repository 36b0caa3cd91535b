"""Planboard processes run as real subprocesses (``planboard serve|relay|worker``) on the
session's servers, for the shutdown and soak tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from http.client import HTTPConnection
from pathlib import Path

from planboard.config import Settings
from planboard_devstack.paths import free_port


def planboard_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment that points a ``planboard`` process at ``settings``' servers."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLANBOARD_")}
    env.update(
        PLANBOARD_ENV="test",
        PLANBOARD_MONGODB_URI=settings.mongodb_uri,
        PLANBOARD_MONGODB_DB=settings.mongodb_db,
        PLANBOARD_KAFKA_BOOTSTRAP=settings.kafka_bootstrap,
        PLANBOARD_KAFKA_TOPIC_PREFIX=settings.kafka_topic_prefix,
        PLANBOARD_KAFKA_PARTITIONS=str(settings.kafka_partitions),
        PLANBOARD_REDIS_URL=settings.redis_url,
        PLANBOARD_SMTP_HOST=settings.smtp_host,
        PLANBOARD_SMTP_PORT=str(settings.smtp_port),
        PLANBOARD_DEPENDENCY_TIMEOUT_S=str(settings.dependency_timeout_s),
        PLANBOARD_RATE_LIMIT_ENABLED="false",
        PLANBOARD_ACCESS_LOG="false",
        PLANBOARD_LOG_LEVEL="WARNING",
    )
    env.update(extra)
    return env


class PlanboardProcess:
    """One ``python -m planboard ARGS`` child; output goes to ``log_path``."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.args, self.env, self.log_path = args, env, log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "planboard", *self.args],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def rss_bytes(self) -> int:
        """The resident set size of the process now (``VmRSS`` in /proc)."""
        with open(f"/proc/{self.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS line")

    def terminate(self) -> None:
        if self.alive():
            os.kill(self.pid, signal.SIGTERM)

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def stop(self, timeout: float = 40.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; the exit code (None if never started)."""
        if self.proc is None:
            return None
        self.terminate()
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout=10)


class ApiProcess(PlanboardProcess):
    """``planboard serve`` on a free loopback port."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        super().__init__(["serve", "--port", str(self.port)], env, log_path)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Block until /readyz answers 200 (fails early if the process dies)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.alive(), f"planboard serve exited:\n{self.log_tail()}"
            connection = HTTPConnection("127.0.0.1", self.port, timeout=5)
            try:
                connection.request("GET", "/readyz")
                if connection.getresponse().status == 200:
                    return
            except OSError:
                pass
            finally:
                connection.close()
            time.sleep(0.2)
        raise AssertionError(f"planboard serve not ready in {timeout:.0f} s:\n{self.log_tail()}")
