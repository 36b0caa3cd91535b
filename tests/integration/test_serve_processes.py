"""``planboard serve`` with PLANBOARD_API_PROCESSES=2: two processes on one port
(SO_REUSEPORT), /metrics answering for both, a crashed process restarted, SIGTERM
draining every process and exiting 0."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from planboard.config import Settings
from planboard_devstack.paths import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _children(pid: int) -> list[int]:
    found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return sorted(int(p) for p in found)


def _listeners(port: int) -> set[str]:
    """Inodes of the sockets listening on ``port`` (IPv4)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        cols = line.split()
        if cols[1].endswith(f":{port:04X}") and cols[3] == "0A":  # 0A: LISTEN
            found.add(cols[9])
    return found


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 - loopback
        return answer.status, answer.read().decode()


def _wait(predicate, timeout: float = 60.0, what: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except OSError:
            value = None
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _healthz_total(metrics: str) -> float:
    pattern = r'planboard_http_requests_total\{[^}]*route="/healthz"[^}]*\} ([0-9.e+]+)'
    return sum(float(v) for v in re.findall(pattern, metrics))


@pytest.fixture
def served(settings: Settings, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLANBOARD_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(
        PLANBOARD_ENV="test",
        PLANBOARD_API_PROCESSES="2",
        PLANBOARD_PORT=str(port),
        PLANBOARD_MONGODB_URI=settings.mongodb_uri,
        PLANBOARD_MONGODB_DB=settings.mongodb_db,
        PLANBOARD_KAFKA_BOOTSTRAP=settings.kafka_bootstrap,
        PLANBOARD_REDIS_URL=settings.redis_url,
        PLANBOARD_LOG_LEVEL="WARNING",
        PLANBOARD_ACCESS_LOG="false",
    )
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "planboard", "serve"],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait(lambda: len(_children(proc.pid)) == 2, what="two API processes")
        _wait(lambda: _get(base + "/healthz")[0] == 200, what="the API")
        _wait(lambda: len(_listeners(port)) == 2, what="both processes listening")
        yield proc, base
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        log.close()


def test_two_processes_share_the_port_and_report_metrics_together(served) -> None:
    proc, base = served
    children = _children(proc.pid)
    assert len(children) == 2
    listening = _listeners(int(base.rsplit(":", 1)[1]))

    def listens(pid: int) -> bool:  # holds a listening socket of the port (SO_REUSEPORT)
        links = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
        return any(f"socket:[{inode}]" in links for inode in listening)

    assert len(listening) == 2
    assert all(listens(pid) for pid in children)
    before = _healthz_total(_get(base + "/metrics")[1])
    for _ in range(40):
        assert _get(base + "/healthz")[0] == 200
    # whichever process answers the scrape counts the requests of both
    for _ in range(4):
        assert _healthz_total(_get(base + "/metrics")[1]) - before == 40


def test_a_crashed_process_is_restarted_and_sigterm_stops_all_cleanly(served) -> None:
    proc, base = served
    first, second = _children(proc.pid)
    os.kill(first, signal.SIGKILL)
    _wait(
        lambda: len(kids := _children(proc.pid)) == 2 and first not in kids,
        what="a replacement process",
    )
    assert second in _children(proc.pid)
    _wait(lambda: all(_get(base + "/healthz")[0] == 200 for _ in range(10)), what="serving")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0
    with pytest.raises(OSError):
        _get(base + "/healthz")


def test_processes_do_not_outlive_a_killed_supervisor(served) -> None:
    proc, base = served
    children = _children(proc.pid)
    proc.kill()  # SIGKILL: no chance to forward anything
    proc.wait(10)

    def gone(pid: int) -> bool:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split()[2]
        except FileNotFoundError:
            return True
        return state == "Z"

    _wait(lambda: all(gone(pid) for pid in children), timeout=60, what="the children to exit")
    _wait(lambda: not _listeners(int(base.rsplit(":", 1)[1])), what="the port to be free")
