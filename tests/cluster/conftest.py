"""A one-node Kubernetes cluster with real Pods (``make test-cluster``), once per session.

``cluster`` brings up ``planboard_devstack.cluster.NodeCluster`` (containerd, kubelet,
kube-proxy, CoreDNS, the control plane and the dev backends in the network namespace
``planboard-cluster``) with the Planboard image built from this tree's unchanged
Dockerfile. The test session's thread joins that namespace, so kubectl, helm and plain
HTTP calls here reach the apiserver, Pods and ClusterIP Services directly.

Every wait is a bounded poll; a timeout fails with the cluster's diagnosis (Pods, events,
describe and logs of the Pods that are not ready, kubelet and containerd log tails).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from planboard_devstack.cluster import ClusterTools, NodeCluster, build_images, ensure_tools
from planboard_devstack.cluster.tools import chart_dir, source_root

#: Every cluster test may take this long, the session's bring-up included (it runs in the
#: first test's setup): cold image layers and a dozen Pods starting on two cores.
TIMEOUT_S = 900


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.cluster)
            item.add_marker(pytest.mark.timeout(TIMEOUT_S))


@pytest.fixture(scope="session")
def cluster_tools() -> ClusterTools:
    if os.geteuid() != 0:
        pytest.fail("the one-node cluster needs root (network namespaces, cgroups, mounts)")
    return ensure_tools()


def session_run_dir() -> Path:
    """``PLANBOARD_CLUSTER_RUN_DIR``, else a new ``.planboard/cluster/run-<time>-*`` of the
    checkout (pytest's own temp dirs are rotated by every root pytest session on the
    machine, which would take the logs of a failed run with them); the last three runs
    are kept."""
    if os.environ.get("PLANBOARD_CLUSTER_RUN_DIR"):
        return Path(os.environ["PLANBOARD_CLUSTER_RUN_DIR"])
    runs = source_root() / ".planboard" / "cluster"
    runs.mkdir(parents=True, exist_ok=True)
    for old in sorted(runs.glob("run-*"))[:-2]:
        shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=time.strftime("run-%Y%m%dT%H%M%S-"), dir=runs))


@pytest.fixture(scope="session")
def cluster(cluster_tools: ClusterTools) -> Iterator[NodeCluster]:
    run_dir = session_run_dir()
    images = build_images(cluster_tools, run_dir / "images")
    node = NodeCluster(run_dir, cluster_tools, images, log=lambda line: print(f"cluster: {line}"))

    # SIGTERM (a CI job cancelled, `timeout`) must still run the teardown below.
    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    node.start()
    try:
        yield node
    finally:
        peak = node.memory_peak_bytes()
        try:
            node.stop()
        finally:
            signal.signal(signal.SIGTERM, previous)
        print(
            f"\ncluster: up in {node.start_seconds:.0f}s; memory peak of the cluster "
            f"(daemons, backends, Pods) {peak / 2**30:.2f} GiB; logs in {node.logs_dir}"
        )


# -- helpers ------------------------------------------------------------------------------


def wait_for(
    check: Callable[[], Any],
    *,
    timeout: float,
    what: str,
    cluster: NodeCluster,
    namespace: str | None = None,
    interval: float = 1.0,
) -> Any:
    """Poll ``check`` until it returns something truthy (exceptions count as not yet);
    on timeout fail with the last result and the cluster's diagnosis."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (OSError, ValueError, subprocess.SubprocessError, AssertionError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(interval)
    pytest.fail(
        f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})\n"
        f"{cluster.diagnose(namespace)}"
    )


@dataclass
class Kubectl:
    cluster: NodeCluster
    namespace: str

    def __call__(self, *args: str, check: bool = True, timeout: float = 120.0) -> str:
        result = self.cluster.kubectl("-n", self.namespace, *args, check=False, timeout=timeout)
        if check and result.returncode != 0:
            pytest.fail(
                f"kubectl {' '.join(args)} failed:\n{result.stderr}\n"
                f"{self.cluster.diagnose(self.namespace)}"
            )
        return result.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self("get", *args, "-o", "json"))


@dataclass
class Helm:
    binary: Path
    cluster: NodeCluster

    def __call__(self, *args: str, check: bool = True, timeout: float = 900.0) -> str:
        result = subprocess.run(
            [str(self.binary), "--kubeconfig", str(self.cluster.kubeconfig_path), *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            pytest.fail(
                f"helm {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n"
                f"{result.stderr}\n{self.cluster.diagnose()}"
            )
        return result.stdout + result.stderr


@pytest.fixture(scope="session")
def helm(cluster: NodeCluster, cluster_tools: ClusterTools) -> Helm:
    return Helm(cluster_tools.helm, cluster)


@pytest.fixture(scope="session")
def chart() -> Path:
    return chart_dir()


@dataclass
class Response:
    status: int
    body: Any
    headers: dict[str, str]


def http(
    method: str,
    url: str,
    body: Any = None,
    *,
    token: str | None = None,
    timeout: float = 10.0,
) -> Response:
    """One HTTP call from the test thread (inside the cluster's network namespace)."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"Accept": "application/json"}
    if data is not None:
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:  # noqa: S310
            status, raw, got = resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        status, raw, got = exc.code, exc.read(), dict(exc.headers)
    try:
        parsed: Any = json.loads(raw) if raw else None
    except ValueError:
        parsed = raw.decode(errors="replace")
    return Response(status, parsed, got)
