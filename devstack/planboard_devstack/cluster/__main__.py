"""``python -m planboard_devstack.cluster tools|up|down``.

- ``tools``: install and build everything the one-node cluster runs, and the images from
  this source tree (``make test-cluster`` runs it before pytest, so a cold machine's
  builds do not run under pytest's per-test timeout);
- ``up``: run a cluster until Ctrl-C (or SIGTERM), printing how to reach it;
- ``down``: clean up after a cluster whose process died without doing it (a crash,
  SIGKILL); with ``--check`` it exits 1 if there was anything to clean, which after a
  test session means its teardown leaked.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import FrameType

from planboard_devstack.cluster.node import (
    LOCK_PATH,
    NETNS,
    ClusterLock,
    HostState,
    NodeCluster,
    undo,
)
from planboard_devstack.cluster.tools import build_images, ensure_tools
from planboard_devstack.paths import cache_dir
from planboard_devstack.process import ServerError


def _log(line: str) -> None:
    print(f"cluster: {line}", file=sys.stderr, flush=True)


def _tools(_: argparse.Namespace) -> int:
    started = time.monotonic()
    tools = ensure_tools(verbose=True)
    images_started = time.monotonic()
    build_images(tools, cache_dir() / "cluster" / "images" / "out")
    _log(f"images built in {time.monotonic() - images_started:.0f}s")
    _log(f"tools and images ready in {time.monotonic() - started:.0f}s")
    return 0


def _up(args: argparse.Namespace) -> int:
    tools = ensure_tools(verbose=True)
    run_dir = Path(args.run_dir or tempfile.mkdtemp(prefix="planboard-cluster-"))
    images = build_images(tools, run_dir / "images")
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with NodeCluster(run_dir, tools, images, log=_log) as cluster:
        enter = f"nsenter --net=/run/netns/{NETNS}"
        print(
            f"one-node cluster up in {cluster.start_seconds:.0f}s; run dir {run_dir}\n"
            f"  {enter} {tools.kubectl} --kubeconfig {cluster.kubeconfig_path} get pods -A\n"
            f"  {enter} {tools.helm} --kubeconfig {cluster.kubeconfig_path} list -A\n"
            f"  logs: {cluster.logs_dir}/*.log, Pods: {run_dir / 'pod-logs'}\n"
            f"  backends: {cluster.mongodb_uri} {cluster.kafka_bootstrap} {cluster.redis_url}\n"
            "Ctrl-C stops it and removes every trace.",
            flush=True,
        )
        while not stop.wait(1):
            pass
    return 0


def _down(args: argparse.Namespace) -> int:
    if ClusterLock().held_elsewhere():
        _log(f"a cluster is running ({LOCK_PATH} is held): stop that process instead")
        return 1
    state = HostState.load()
    if state is None:
        _log("nothing to clean")
        return 0
    alive = state.owner_pid != os.getpid() and Path(f"/proc/{state.owner_pid}").exists()
    _log(f"cleaning up after the cluster of pid {state.owner_pid} ({'alive' if alive else 'gone'})")
    done = undo(state, _log)
    return 1 if args.check and done else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m planboard_devstack.cluster")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("tools", help="build the cluster's tools and images (cached)")
    up = commands.add_parser("up", help="run a one-node cluster until Ctrl-C")
    up.add_argument("--run-dir", help="where its state and logs go (default: a new temp dir)")
    down = commands.add_parser("down", help="clean up after a cluster that crashed")
    down.add_argument(
        "--check", action="store_true", help="exit 1 if anything had to be cleaned up"
    )
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        _log("the one-node cluster needs root (network namespaces, cgroups, mounts)")
        return 1
    handler = {"tools": _tools, "up": _up, "down": _down}[args.command]
    try:
        return handler(args)
    except ServerError as exc:
        _log(str(exc))
        return 1


if __name__ == "__main__":
    sys.exit(main())
