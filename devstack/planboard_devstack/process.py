"""A child server process with a log file, readiness wait and clean stop."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


class ServerError(RuntimeError):
    """A dev server could not be installed or did not become ready."""


@dataclass
class ManagedProcess:
    """One supervised child process; output goes to ``log_path``."""

    name: str
    argv: Sequence[str]
    log_path: Path
    env: Mapping[str, str] | None = None
    cwd: Path | None = None
    stop_timeout: float = 15.0
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        if self.env:
            env.update(self.env)
        with open(self.log_path, "ab") as log:
            # A new session, so Ctrl-C in the terminal reaches only the supervisor,
            # which then stops children in order.
            self._proc = subprocess.Popen(
                list(self.argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=self.cwd,
                start_new_session=True,
            )

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def poll(self) -> int | None:
        """The exit code if the process has ended, else None."""
        if self._proc is None:
            return None
        return self._proc.poll()

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_until(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll ``ready`` until true; fail early if the process dies."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = self.poll()
            if code is not None:
                raise ServerError(
                    f"{self.name} exited with code {code} before {what}; "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            if ready():
                return
            time.sleep(0.1)
        raise ServerError(
            f"{self.name} not {what} after {timeout:.0f}s; log {self.log_path}:\n{self.log_tail()}"
        )

    def signal(self, sig: int) -> None:
        if self._proc is not None and self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, sig)

    def stop(self) -> None:
        """SIGTERM the process group, then SIGKILL after ``stop_timeout``."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self._proc.wait(timeout=10)
        self._proc = None


class Server:
    """Base class of an embedded dev server (Redis, Kafka, MongoDB, mail sink).

    Subclasses implement ``install`` (idempotent, cached under ``cache_dir()``),
    ``_argv``/``_ready`` and expose ``url``.
    """

    name = "server"
    start_timeout = 60.0
    stop_timeout = 15.0

    def __init__(self, run_dir: Path, port: int, host: str = "127.0.0.1") -> None:
        self.run_dir = run_dir
        self.host = host
        self.port = port
        self.process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        raise NotImplementedError

    def install(self) -> None:
        """Make sure the server's binaries are present (download/build once)."""

    def prepare(self) -> None:
        """Create data directories/config files before the first start."""

    def _argv(self) -> list[str]:
        raise NotImplementedError

    def _env(self) -> dict[str, str] | None:
        return None

    def _ready(self) -> bool:
        from planboard_devstack.paths import port_open

        return port_open(self.host, self.port)

    def start(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.install()
        self.prepare()
        self.process = ManagedProcess(
            name=self.name,
            argv=self._argv(),
            log_path=self.run_dir / f"{self.name}.log",
            env=self._env(),
            cwd=self.run_dir,
            stop_timeout=self.stop_timeout,
        )
        self.process.start()
        self.process.wait_until(self._ready, self.start_timeout, "ready")

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def running(self) -> bool:
        return self.process is not None and self.process.running()
