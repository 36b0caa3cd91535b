"""A real Kubernetes control plane for the operator and chart tests.

``kube_cluster`` starts etcd + kube-apiserver + kube-controller-manager (built once
into the cache by scripts/build-kube.sh; the first run takes ~6 minutes) unless
``PLANBOARD_KUBECONFIG`` names the kubeconfig of an existing cluster.
There is no scheduler or kubelet: Pods stay Pending.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config

from planboard.devstack.kube import KubeCluster


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
