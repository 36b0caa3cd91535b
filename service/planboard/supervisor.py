"""``planboard serve`` with several processes on one port (PLANBOARD_API_PROCESSES).

One Python process serves one core. To use more cores on one machine the supervisor
starts N ``planboard serve`` children that each bind the same port with SO_REUSEPORT,
so the kernel spreads new connections across them (no shared accept socket, no
thundering herd). In Kubernetes the default stays 1 process per pod and the operator
scales replicas instead; this is for a VM or a pod given several cores.

- Metrics: the children write Prometheus samples to a shared directory
  (``PROMETHEUS_MULTIPROC_DIR``, made here when unset) and every child's ``/metrics``
  answers for all of them, so a scrape landing on any child sees the whole server.
- Signals: SIGTERM/SIGINT go to every child; each fails readiness, finishes its
  in-flight requests and exits; the supervisor exits when all have, with the worst
  exit code.
- A child that dies unexpectedly is restarted after a short backoff (its live gauges
  are marked dead first), like any supervised service; a supervisor that dies (even by
  SIGKILL) takes its children with it (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from planboard.config import Settings
from planboard.metrics import CHILD_ENV, MULTIPROC_ENV

log = logging.getLogger(__name__)

RESTART_BACKOFF_S = (0.5, 1.0, 2.0, 5.0)
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def supervise(settings: Settings, argv: list[str]) -> int:
    """Run ``settings.api_processes`` children of ``planboard serve``; return the exit code."""
    own_dir = None
    metrics_dir = os.environ.get(MULTIPROC_ENV)
    if not metrics_dir:
        own_dir = metrics_dir = tempfile.mkdtemp(prefix="planboard-metrics-")
    else:
        for stale in Path(metrics_dir).glob("*.db"):  # samples of an earlier run
            stale.unlink()
    env = {
        **os.environ,
        CHILD_ENV: "1",
        MULTIPROC_ENV: metrics_dir,
        "PLANBOARD_API_PROCESSES": "1",
    }
    cmd = [sys.executable, "-m", "planboard", "serve", *argv]
    stopping = threading.Event()
    children: dict[int, subprocess.Popen[bytes]] = {}
    restarts: dict[int, int] = {}

    def spawn(slot: int) -> None:
        children[slot] = subprocess.Popen(cmd, env=env, preexec_fn=_die_with_parent)

    def forward(signum: int, _frame: object) -> None:
        stopping.set()
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    log.info(
        "starting %d API processes on port %d (SO_REUSEPORT)",
        settings.api_processes,
        settings.port,
    )
    try:
        for slot in range(settings.api_processes):
            spawn(slot)
        codes: dict[int, int] = {}
        while len(codes) < len(children):
            time.sleep(0.2)
            for slot, child in list(children.items()):
                if slot in codes or child.poll() is None:
                    continue
                code = child.returncode
                _mark_dead(child.pid, metrics_dir)
                if stopping.is_set():
                    codes[slot] = code
                    continue
                attempt = restarts.get(slot, 0)
                delay = RESTART_BACKOFF_S[min(attempt, len(RESTART_BACKOFF_S) - 1)]
                log.error(
                    "API process %d exited with %s; restarting in %.1f s", child.pid, code, delay
                )
                restarts[slot] = attempt + 1
                time.sleep(delay)
                if not stopping.is_set():
                    spawn(slot)
                else:
                    codes[slot] = code
        worst = max(codes.values(), default=0)
        # a child ended by the forwarded signal reports -SIGTERM: a clean stop
        return (
            0
            if all(c in (0, -signal.SIGTERM, -signal.SIGINT) for c in codes.values())
            else (worst if worst > 0 else 1)
        )
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for child in children.values():
            if child.poll() is None:
                child.kill()
                child.wait()
        if own_dir:
            shutil.rmtree(own_dir, ignore_errors=True)


def _die_with_parent() -> None:
    """In the child, before exec: the kernel sends SIGTERM when the supervisor dies, even
    by SIGKILL, so no API process outlives it holding the port (Linux prctl)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _mark_dead(pid: int, metrics_dir: str) -> None:
    from prometheus_client import multiprocess

    with contextlib.suppress(OSError):  # the directory is gone
        multiprocess.mark_process_dead(pid, metrics_dir)  # type: ignore[no-untyped-call]
