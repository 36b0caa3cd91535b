"""The node itself: Pods of the project's image run, and the cluster's network works —
a ClusterIP Service from the node, Service names through CoreDNS and Pod-to-Service
traffic from inside a Pod, ``kubectl logs`` and ``exec`` through the kubelet."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest

from planboard_devstack.cluster import NodeCluster
from tests.cluster.conftest import Kubectl, http, wait_for


@pytest.fixture
def namespace(cluster: NodeCluster) -> Iterator[str]:
    name = f"smoke-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false")


def smoke_objects(namespace: str, image: str) -> list[dict[str, object]]:
    labels = {"app": "smoke"}
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "smoke", "namespace": namespace},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "securityContext": {
                            "runAsNonRoot": True,
                            "runAsUser": 10001,
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "containers": [
                            {
                                "name": "web",
                                "image": image,
                                "imagePullPolicy": "IfNotPresent",
                                "command": [
                                    "python",
                                    "-m",
                                    "http.server",
                                    "8000",
                                    "--directory",
                                    "/opt/planboard",
                                ],
                                "ports": [{"containerPort": 8000}],
                                "readinessProbe": {
                                    "httpGet": {"path": "/", "port": 8000},
                                    "periodSeconds": 2,
                                },
                                "securityContext": {
                                    "allowPrivilegeEscalation": False,
                                    "readOnlyRootFilesystem": True,
                                    "capabilities": {"drop": ["ALL"]},
                                },
                                "resources": {
                                    "requests": {"cpu": "10m", "memory": "32Mi"},
                                    "limits": {"memory": "128Mi"},
                                },
                            }
                        ],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "smoke", "namespace": namespace},
            "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 8000}]},
        },
    ]


def test_pods_of_the_image_serve_through_a_service_and_dns(
    cluster: NodeCluster, namespace: str, tmp_path
) -> None:
    kubectl = Kubectl(cluster, namespace)
    manifest = tmp_path / "smoke.json"
    manifest.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "List",
                "items": smoke_objects(namespace, cluster.images.planboard_ref),
            }
        )
    )
    kubectl("apply", "-f", str(manifest))
    kubectl("rollout", "status", "deployment/smoke", "--timeout=180s", timeout=200)

    pods = kubectl.json("pods", "-l", "app=smoke")["items"]
    assert len(pods) == 2
    for pod in pods:
        status = pod["status"]["containerStatuses"][0]
        assert status["ready"], status
        assert status["image"].endswith(cluster.images.planboard_ref.split("/", 1)[1])
        assert pod["spec"]["nodeName"] == "planboard-node"
        assert pod["status"]["podIP"].startswith("10.244.0.")

    # The ClusterIP from the node (kube-proxy's rules in the namespace).
    cluster_ip = kubectl.json("service", "smoke")["spec"]["clusterIP"]
    answer = wait_for(
        lambda: http("GET", f"http://{cluster_ip}/", timeout=5).status == 200,
        timeout=60,
        what="the smoke Service's ClusterIP",
        cluster=cluster,
        namespace=namespace,
    )
    assert answer

    # From inside a Pod: the Service's DNS name (CoreDNS) and Pod-to-Service traffic,
    # which may come back to the calling Pod itself (hairpin).
    pod = pods[0]["metadata"]["name"]
    fetch = (
        "import urllib.request;"
        f"r = urllib.request.urlopen('http://smoke.{namespace}.svc.cluster.local/', timeout=5);"
        "print(r.status)"
    )
    for _ in range(4):
        out = kubectl("exec", pod, "--", "python", "-c", fetch, timeout=60)
        assert out.strip() == "200", out

    # kubectl logs reaches the kubelet (the apiserver proxies to it).
    logs = kubectl("logs", pod)
    assert '"GET / HTTP/1.1" 200' in logs
