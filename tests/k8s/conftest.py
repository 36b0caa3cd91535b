"""A real Kubernetes control plane for the operator and chart tests.

``kube_cluster`` starts etcd + kube-apiserver + kube-controller-manager (built once
into the cache by planboard_devstack/scripts/build-kube.sh; the first run takes ~6 minutes) unless
``PLANBOARD_KUBECONFIG`` names the kubeconfig of an existing cluster.
There is no scheduler or kubelet: Pods stay Pending.
"""

from __future__ import annotations

import asyncio
import copy
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from planboard_devstack.kube import KubeCluster
from planboard_operator.config import Endpoints, OperatorConfig, Scope, Timing
from planboard_operator.lag import KafkaLagSource, StaticLagSource
from planboard_operator.run import build_runtime, run_operator
from planboard_operator.runtime import Runtime


@dataclass(frozen=True)
class ExternalCluster:
    """An existing cluster named by PLANBOARD_KUBECONFIG (its current context)."""

    kubeconfig_path: Path
    server_url: str

    @classmethod
    def from_kubeconfig(cls, path: Path) -> ExternalCluster:
        data = yaml.safe_load(path.read_text())
        context_name = data.get("current-context")
        context = next(c["context"] for c in data["contexts"] if c["name"] == context_name)
        cluster = next(c["cluster"] for c in data["clusters"] if c["name"] == context["cluster"])
        return cls(kubeconfig_path=path, server_url=cluster["server"])


@pytest.fixture(scope="session")
def kube_cluster(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[KubeCluster | ExternalCluster]:
    external = os.environ.get("PLANBOARD_KUBECONFIG")
    if external:
        path = Path(external).expanduser()
        if not path.is_file():
            pytest.fail(f"PLANBOARD_KUBECONFIG={external} is not a file")
        yield ExternalCluster.from_kubeconfig(path)
        return
    cluster = KubeCluster(tmp_path_factory.mktemp("kube"))
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def kube_api(kube_cluster: KubeCluster | ExternalCluster) -> Iterator[client.ApiClient]:
    """A kubernetes ApiClient with the cluster's admin kubeconfig."""
    api = config.new_client_from_config(config_file=str(kube_cluster.kubeconfig_path))
    try:
        yield api
    finally:
        api.close()


@pytest.fixture
def namespace(kube_api: client.ApiClient) -> Iterator[str]:
    """A fresh namespace, deleted (by the namespace controller) after the test."""
    name = f"pbtest-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(kube_api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    try:
        yield name
    finally:
        core.delete_namespace(name)


# -- the Planboard operator, running in-process against the cluster -------------------------
# (fixtures for tests/k8s/test_operator*.py)

CRD_DIR = Path(__file__).resolve().parents[2] / "crds"
PB_GROUP, PB_VERSION = "planboard.dev", "v1alpha1"


def eventually(
    check: Callable[[], Any], timeout: float = 30.0, what: str = "condition", interval: float = 0.2
) -> Any:
    """Poll ``check`` until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except ApiException as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


class TestClock:
    """The operator's clock: real time plus an offset tests move forward."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


class TestLagSource(StaticLagSource):
    """Static lag per group id, except for bootstrap servers given a real Kafka source."""

    def __init__(self) -> None:
        super().__init__()
        self.real: dict[str, KafkaLagSource] = {}

    async def lags(self, bootstrap: str, group_ids: Sequence[str]) -> dict[str, int]:
        if bootstrap in self.real:
            return await self.real[bootstrap].lags(bootstrap, group_ids)
        return await super().lags(bootstrap, group_ids)


@dataclass
class RunningOperator:
    runtime: Runtime
    lag: TestLagSource
    clock: TestClock
    liveness_url: str


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def planboard_crds(kube_api: client.ApiClient) -> list[str]:
    """The CRDs of crds/, applied (created or replaced) and Established."""
    ext = client.ApiextensionsV1Api(kube_api)
    names: list[str] = []
    for path in sorted(CRD_DIR.glob("*.yaml")):
        body = yaml.safe_load(path.read_text())
        name = body["metadata"]["name"]
        try:
            current = ext.read_custom_resource_definition(name)
            body["metadata"]["resourceVersion"] = current.metadata.resource_version
            ext.replace_custom_resource_definition(name, body)
        except ApiException as exc:
            if exc.status != 404:
                raise
            ext.create_custom_resource_definition(body)
        names.append(name)

    def established() -> bool:
        for name in names:
            conditions = ext.read_custom_resource_definition(name).status.conditions or []
            if not any(c.type == "Established" and c.status == "True" for c in conditions):
                return False
        return True

    eventually(established, what="the Planboard CRDs to be Established")
    return names


@pytest.fixture(scope="session")
def planboard_operator(
    kube_cluster: KubeCluster | ExternalCluster, planboard_crds: list[str]
) -> Iterator[RunningOperator]:
    """The operator in a thread (kopf.operator), watching every namespace, resync 1 s."""
    liveness_port = _free_port()
    config = OperatorConfig(
        scope=Scope(clusterwide=True),
        timing=Timing(
            resync_seconds=1.0,
            lag_timeout_seconds=3.0,
            scale_down_stabilization_seconds=0.0,
            deadline_grace_seconds=0.0,
        ),
        endpoints=Endpoints(
            metrics_port=0,
            metrics_host="127.0.0.1",
            liveness_endpoint=f"http://127.0.0.1:{liveness_port}/healthz",
        ),
        kubeconfig=str(kube_cluster.kubeconfig_path),
    )
    lag, clock = TestLagSource(), TestClock()
    runtime = build_runtime(config, lag_source=lag, clock=clock)
    stop, ready = threading.Event(), threading.Event()
    failure: list[BaseException] = []

    def main() -> None:
        try:
            asyncio.run(run_operator(config, runtime, stop_flag=stop, ready_flag=ready))
        except BaseException as exc:  # reported by the fixture
            failure.append(exc)

    thread = threading.Thread(target=main, name="planboard-operator", daemon=True)
    thread.start()
    if not ready.wait(30) or failure:
        stop.set()
        pytest.fail(f"the operator did not start: {failure}")
    try:
        yield RunningOperator(runtime, lag, clock, f"http://127.0.0.1:{liveness_port}/healthz")
    finally:
        stop.set()
        thread.join(30)


SECRET_DATA = {
    "secret-key": "x" * 40,
    "mongodb-uri": "mongodb://mongo:27017/",
    "redis-url": "redis://redis:6379/0",
}


def planboard_body(name: str, **spec_changes: Any) -> dict[str, Any]:
    """A valid Planboard; keyword arguments replace top-level spec fields."""
    spec: dict[str, Any] = {
        "image": {"repository": "ghcr.io/planboard/planboard", "tag": "0.1.0"},
        "secretKeyRef": {"name": "planboard-secrets", "key": "secret-key"},
        "mongodb": {"uriSecretRef": {"name": "planboard-secrets", "key": "mongodb-uri"}},
        "kafka": {"bootstrapServers": "kafka.invalid:9092", "topicPrefix": "planboard."},
        "redis": {"urlSecretRef": {"name": "planboard-secrets", "key": "redis-url"}},
        "api": {"replicas": 2},
        "workers": {
            "groups": [
                {"name": "notifications", "minReplicas": 1, "maxReplicas": 4, "lagPerReplica": 100},
                {"name": "rollups", "minReplicas": 1, "maxReplicas": 2},
            ]
        },
        "config": {"logLevel": "INFO", "features": {"beta": True}},
    }
    spec.update(copy.deepcopy(spec_changes))
    return {
        "apiVersion": f"{PB_GROUP}/{PB_VERSION}",
        "kind": "Planboard",
        "metadata": {"name": name},
        "spec": spec,
    }
