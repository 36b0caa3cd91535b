"""The operator reconciles a Planboard into its children on a real control plane."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from planboard_devstack.kube import install_kube

from .conftest import (
    PB_GROUP,
    PB_VERSION,
    ExternalCluster,
    KubeCluster,
    RunningOperator,
    eventually,
    planboard_body,
)

pytestmark = pytest.mark.k8s


@pytest.fixture
def kubectl(kube_cluster: KubeCluster | ExternalCluster) -> Callable[..., str]:
    binary = install_kube() / "kubectl"

    def run(*args: str) -> str:
        result = subprocess.run(
            [str(binary), "--kubeconfig", str(kube_cluster.kubeconfig_path), *args],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    return run


class Stack:
    """Read and change one Planboard and its children."""

    def __init__(self, api: client.ApiClient, namespace: str, name: str) -> None:
        self.namespace, self.name = namespace, name
        self.custom = client.CustomObjectsApi(api)
        self.apps = client.AppsV1Api(api)
        self.core = client.CoreV1Api(api)
        self.api = api

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        created: dict[str, Any] = self.custom.create_namespaced_custom_object(
            PB_GROUP, PB_VERSION, self.namespace, "planboards", body
        )
        return created

    def get(self) -> dict[str, Any]:
        found: dict[str, Any] = self.custom.get_namespaced_custom_object(
            PB_GROUP, PB_VERSION, self.namespace, "planboards", self.name
        )
        return found

    def patch(self, body: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(
            PB_GROUP, PB_VERSION, self.namespace, "planboards", self.name, body
        )

    def condition(self, type_: str) -> dict[str, Any]:
        for cond in (self.get().get("status") or {}).get("conditions") or []:
            if cond["type"] == type_:
                return dict(cond)
        return {}

    def deployment(self, part: str) -> client.V1Deployment | None:
        try:
            return self.apps.read_namespaced_deployment(f"{self.name}-{part}", self.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def replicas(self, part: str) -> int | None:
        dep = self.deployment(part)
        return None if dep is None else dep.spec.replicas

    def make_pods_ready(self) -> int:
        """Pods stay Pending (no kubelet): mark them Running and Ready, as a kubelet would."""
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        selector = f"app.kubernetes.io/instance={self.name}"
        count = 0
        for pod in self.core.list_namespaced_pod(self.namespace, label_selector=selector).items:
            ready = any(
                c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or [])
            )
            if ready or pod.metadata.deletion_timestamp:
                continue
            self.core.patch_namespaced_pod_status(
                pod.metadata.name,
                self.namespace,
                {
                    "status": {
                        "phase": "Running",
                        "conditions": [
                            {"type": "Ready", "status": "True", "lastTransitionTime": now}
                        ],
                    }
                },
            )
            count += 1
        return count

    def events(self) -> list[tuple[str, str]]:
        items = self.core.list_namespaced_event(
            self.namespace, field_selector=f"involvedObject.name={self.name}"
        ).items
        return [(e.reason, e.message) for e in items]


@pytest.fixture
def stack(kube_api: client.ApiClient, namespace: str, planboard_operator: RunningOperator) -> Stack:
    return Stack(kube_api, namespace, "demo")


def wait_ready(stack: Stack, timeout: float = 40) -> dict[str, Any]:
    def ready() -> dict[str, Any]:
        stack.make_pods_ready()
        cond = stack.condition("Ready")
        return cond if cond.get("status") == "True" else {}

    result: dict[str, Any] = eventually(ready, timeout, "Ready=True")
    return result


def test_children_are_created_with_owner_references_and_specs(stack: Stack) -> None:
    created = stack.create(planboard_body("demo"))
    uid = created["metadata"]["uid"]
    parts = ["api", "relay", "worker-notifications", "worker-rollups"]
    eventually(lambda: all(stack.deployment(p) for p in parts), what="the four Deployments")
    for part in parts:
        dep = stack.deployment(part)
        assert dep is not None
        (owner,) = dep.metadata.owner_references
        assert (owner.kind, owner.name, owner.uid, owner.controller) == (
            "Planboard",
            "demo",
            uid,
            True,
        )
        assert dep.metadata.labels["app.kubernetes.io/managed-by"] == "planboard-operator"
        assert dep.metadata.labels["app.kubernetes.io/component"] == part
        container = dep.spec.template.spec.containers[0]
        assert container.image == "ghcr.io/planboard/planboard:0.1.0"
        assert container.env_from[0].config_map_ref.name == "demo-config"
        secrets = {e.name: e.value_from.secret_key_ref.key for e in container.env}
        assert secrets == {
            "PLANBOARD_SECRET_KEY": "secret-key",
            "PLANBOARD_MONGODB_URI": "mongodb-uri",
            "PLANBOARD_REDIS_URL": "redis-url",
        }
    api = stack.deployment("api")
    assert api is not None
    assert api.spec.replicas == 2
    container = api.spec.template.spec.containers[0]
    assert container.command == ["planboard", "serve"]
    assert container.readiness_probe.http_get.path == "/readyz"
    # Longer than /readyz's slowest answer (the 2 s dependency timeout), so a silent Kafka
    # or Redis, which readiness only reports, cannot time the probe out.
    assert container.readiness_probe.timeout_seconds == 3
    assert container.liveness_probe.http_get.path == "/healthz"
    worker = stack.deployment("worker-rollups")
    assert worker is not None
    assert worker.spec.template.spec.containers[0].command == [
        "planboard",
        "worker",
        "--group",
        "rollups",
    ]
    service = stack.core.read_namespaced_service("demo-api", stack.namespace)
    assert [(p.name, p.port) for p in service.spec.ports] == [("http", 8080)]
    assert service.spec.selector["app.kubernetes.io/component"] == "api"
    config_map = stack.core.read_namespaced_config_map("demo-config", stack.namespace)
    assert config_map.data["PLANBOARD_LOG_LEVEL"] == "INFO"
    assert config_map.data["PLANBOARD_FEATURE_BETA"] == "true"
    assert config_map.data["PLANBOARD_KAFKA_BOOTSTRAP"] == "kafka.invalid:9092"
    pdb = client.PolicyV1Api(stack.api).read_namespaced_pod_disruption_budget(
        "demo-api", stack.namespace
    )
    assert pdb.spec.min_available == 1
    status = eventually(lambda: stack.get().get("status", {}).get("observedGeneration") == 1)
    assert status
    pb = stack.get()
    annotation = api.spec.template.metadata.annotations["planboard.dev/config-hash"]
    assert annotation == pb["status"]["configHash"]
    assert pb["status"]["api"]["selector"] == (
        "app.kubernetes.io/component=api,app.kubernetes.io/instance=demo,"
        "app.kubernetes.io/name=planboard"
    )
    assert stack.condition("Ready")["status"] == "False"
    assert stack.condition("Ready")["reason"] == "ComponentsNotReady"
    ready = wait_ready(stack)
    assert ready["reason"] == "AllComponentsReady"
    assert ready["observedGeneration"] == 1
    assert stack.condition("ReconciliationPaused")["status"] == "False"
    assert stack.condition("BackupSucceeded")["reason"] == "NoBackupYet"
    assert stack.condition("Progressing")["status"] == "False"
    # lastTransitionTime moves only when the status changes.
    first = stack.condition("ReconciliationPaused")["lastTransitionTime"]
    time.sleep(2.2)
    assert stack.condition("ReconciliationPaused")["lastTransitionTime"] == first
    reasons = {reason for reason, _ in stack.events()}
    assert "Created" in reasons
    # Autoscaling adds the HPA; the Deployment's replica count is then the HPA's.
    stack.patch({"spec": {"api": {"autoscaling": {"enabled": True, "minReplicas": 3}}}})
    hpa = eventually(
        lambda: client.AutoscalingV2Api(stack.api).read_namespaced_horizontal_pod_autoscaler(
            "demo-api", stack.namespace
        ),
        what="the HPA",
    )
    assert hpa.spec.min_replicas == 3
    assert hpa.spec.scale_target_ref.name == "demo-api"
    stack.patch({"spec": {"api": {"autoscaling": {"enabled": False}}}})

    def hpa_gone() -> bool:
        try:
            client.AutoscalingV2Api(stack.api).read_namespaced_horizontal_pod_autoscaler(
                "demo-api", stack.namespace
            )
        except ApiException as exc:
            return exc.status == 404
        return False

    eventually(hpa_gone, what="the HPA to be deleted")


def test_kubectl_scale_and_wait(stack: Stack, kubectl: Callable[..., str]) -> None:
    stack.create(planboard_body("demo"))
    eventually(lambda: stack.replicas("api") == 2, what="the api Deployment")
    kubectl("scale", "planboard/demo", "--replicas=4", "-n", stack.namespace)
    eventually(lambda: stack.replicas("api") == 4, what="api replicas 4")
    eventually(lambda: stack.get()["status"]["api"]["replicas"] == 4, what="status.api.replicas")
    scale = json.loads(
        kubectl(
            "get",
            "--raw",
            f"/apis/planboard.dev/v1alpha1/namespaces/{stack.namespace}/planboards/demo/scale",
        )
    )
    assert scale["spec"]["replicas"] == 4
    assert scale["status"]["replicas"] == 4
    assert "app.kubernetes.io/component=api" in scale["status"]["selector"]
    wait_ready(stack)
    kubectl(
        "wait", "--for=condition=Ready", "planboard/demo", "-n", stack.namespace, "--timeout=20s"
    )
    table = kubectl("get", "planboards", "-n", stack.namespace)
    header = table.splitlines()[0].split()
    assert header[:5] == ["NAME", "READY", "REASON", "API", "API-READY"]
    assert "AllComponentsReady" in table


def test_config_change_rolls_pods_through_the_hash(stack: Stack) -> None:
    stack.create(planboard_body("demo"))
    eventually(lambda: stack.get().get("status", {}).get("configHash"), what="a config hash")
    first = stack.get()["status"]["configHash"]
    stack.patch({"spec": {"config": {"logLevel": "DEBUG"}}})

    def rolled() -> bool:
        dep = stack.deployment("relay")
        return dep is not None and (
            dep.spec.template.metadata.annotations["planboard.dev/config-hash"] != first
        )

    eventually(rolled, what="a new config-hash on the pod template")
    config_map = stack.core.read_namespaced_config_map("demo-config", stack.namespace)
    assert config_map.data["PLANBOARD_LOG_LEVEL"] == "DEBUG"
    eventually(lambda: stack.get()["status"]["configHash"] != first, what="status.configHash")
    eventually(
        lambda: "ConfigChanged" in {r for r, _ in stack.events()}, what="a ConfigChanged event"
    )


def test_config_env_reaches_every_deployment_and_rolls_the_pods(stack: Stack) -> None:
    env = [
        {"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": "http://otel-collector:4318"},
        {
            "name": "SENTRY_DSN",
            "valueFrom": {"secretKeyRef": {"name": "planboard-sentry", "key": "dsn"}},
        },
    ]
    stack.create(planboard_body("demo", config={"logLevel": "INFO", "env": env}))
    eventually(lambda: stack.get().get("status", {}).get("configHash"), what="a config hash")
    first = stack.get()["status"]["configHash"]
    for part in ("api", "relay", "worker-notifications", "worker-rollups"):
        deployment = eventually(lambda p=part: stack.deployment(p), what=part)
        container = deployment.spec.template.spec.containers[0]
        by_name = {e.name: e for e in container.env}
        assert by_name["OTEL_EXPORTER_OTLP_ENDPOINT"].value == "http://otel-collector:4318"
        ref = by_name["SENTRY_DSN"].value_from.secret_key_ref
        assert (ref.name, ref.key) == ("planboard-sentry", "dsn")
        assert by_name["SENTRY_DSN"].value is None
        # After the connection secrets, in the order given.
        names = [e.name for e in container.env]
        assert names[3:] == ["OTEL_EXPORTER_OTLP_ENDPOINT", "SENTRY_DSN"], part
    config_map = stack.core.read_namespaced_config_map("demo-config", stack.namespace)
    assert not [k for k in config_map.data if k.startswith(("OTEL_", "SENTRY_"))]

    # A change of env alone rolls the pods: the config hash covers it.
    stack.patch(
        {"spec": {"config": {"env": [{"name": "OTEL_TRACES_SAMPLER", "value": "always_off"}]}}}
    )

    def rolled() -> bool:
        dep = stack.deployment("api")
        return dep is not None and (
            dep.spec.template.metadata.annotations["planboard.dev/config-hash"] != first
        )

    eventually(rolled, what="a new config-hash after an env change")
    container = stack.deployment("api").spec.template.spec.containers[0]
    assert [e.name for e in container.env][3:] == ["OTEL_TRACES_SAMPLER"]


def test_drift_is_repaired(stack: Stack) -> None:
    stack.create(planboard_body("demo"))
    eventually(lambda: stack.get().get("status", {}).get("observedGeneration") == 1)
    api = stack.deployment("api")
    assert api is not None
    stack.apps.delete_namespaced_deployment("demo-api", stack.namespace)
    eventually(
        lambda: (d := stack.deployment("api")) is not None and d.metadata.uid != api.metadata.uid,
        what="the deleted Deployment to come back",
    )
    stack.apps.patch_namespaced_deployment("demo-relay", stack.namespace, {"spec": {"replicas": 5}})
    eventually(lambda: stack.replicas("relay") == 1, what="hand-edited replicas undone")
    stack.core.delete_namespaced_config_map("demo-config", stack.namespace)
    eventually(
        lambda: stack.core.read_namespaced_config_map("demo-config", stack.namespace),
        what="the ConfigMap to come back",
    )
    eventually(
        lambda: "DriftRepaired" in {r for r, _ in stack.events()}, what="a DriftRepaired event"
    )
    # A worker group removed from the spec loses its Deployment.
    stack.patch({"spec": {"workers": {"groups": [{"name": "notifications"}]}}})
    eventually(lambda: stack.deployment("worker-rollups") is None, what="worker-rollups deleted")


@pytest.mark.parametrize("how", ["spec", "annotation"])
def test_pause_stops_changes(stack: Stack, how: str) -> None:
    stack.create(planboard_body("demo"))
    eventually(lambda: stack.replicas("api") == 2)
    if how == "spec":
        stack.patch({"spec": {"paused": True}})
    else:
        stack.patch({"metadata": {"annotations": {"planboard.dev/paused": "true"}}})
    reason = "PausedBySpec" if how == "spec" else "PausedByAnnotation"
    eventually(
        lambda: stack.condition("ReconciliationPaused").get("reason") == reason,
        what="ReconciliationPaused",
    )
    assert stack.condition("ReconciliationPaused")["status"] == "True"
    stack.patch({"spec": {"api": {"replicas": 3}}})
    stack.apps.delete_namespaced_deployment("demo-relay", stack.namespace)
    time.sleep(3.5)  # three resyncs: nothing may change while paused
    assert stack.replicas("api") == 2
    assert stack.deployment("relay") is None
    pb = stack.get()
    assert pb["status"]["observedGeneration"] < pb["metadata"]["generation"]
    assert stack.condition("Progressing")["reason"] == "ReconciliationPaused"
    if how == "spec":
        stack.patch({"spec": {"paused": False}})
    else:
        stack.patch({"metadata": {"annotations": {"planboard.dev/paused": None}}})
    eventually(lambda: stack.replicas("api") == 3, what="changes applied after unpausing")
    eventually(lambda: stack.deployment("relay") is not None, what="relay restored")
    # the status is written at the end of the reconcile that restored the children
    eventually(
        lambda: stack.condition("ReconciliationPaused").get("status") == "False",
        what="ReconciliationPaused cleared",
    )
    eventually(
        lambda: {"ReconciliationPaused", "ReconciliationResumed"} <= {r for r, _ in stack.events()},
        what="the pause and resume events",
    )
    reasons = {r for r, _ in stack.events()}
    assert {"ReconciliationPaused", "ReconciliationResumed"} <= reasons


def test_worker_replicas_follow_consumer_lag(
    stack: Stack, planboard_operator: RunningOperator
) -> None:
    prefix = f"{stack.namespace}."
    group_id = f"{prefix}notifications"
    lag = planboard_operator.lag
    lag.values[group_id] = 0
    body = planboard_body("demo")
    body["spec"]["kafka"]["topicPrefix"] = prefix
    stack.create(body)
    eventually(lambda: stack.replicas("worker-notifications") == 1, what="min replicas")
    lag.values[group_id] = 250  # 100 per replica
    eventually(lambda: stack.replicas("worker-notifications") == 3, what="3 replicas for lag 250")
    eventually(lambda: stack.get()["status"]["workers"]["notifications"]["lag"] == 250)
    lag.values[group_id] = 100_000
    eventually(lambda: stack.replicas("worker-notifications") == 4, what="capped at maxReplicas")
    assert stack.replicas("worker-rollups") == 1
    try:
        lag.down = "Kafka is unreachable (test)"
        eventually(
            lambda: stack.condition("Degraded").get("reason") == "KafkaLagUnavailable",
            what="Degraded=KafkaLagUnavailable",
        )
        assert stack.condition("Degraded")["status"] == "True"
        lag.values[group_id] = 0
        time.sleep(2.5)
        assert stack.replicas("worker-notifications") == 4  # kept while lag is unknown
    finally:
        lag.down = None
    eventually(lambda: stack.replicas("worker-notifications") == 1, what="back to minReplicas")
    eventually(lambda: stack.condition("Degraded").get("status") == "False")
    assert "WorkersScaled" in {r for r, _ in stack.events()}


def test_deleting_the_planboard_collects_its_children(stack: Stack) -> None:
    stack.create(planboard_body("demo"))
    eventually(lambda: stack.deployment("relay") is not None)
    stack.custom.delete_namespaced_custom_object(
        PB_GROUP, PB_VERSION, stack.namespace, "planboards", "demo"
    )
    selector = "app.kubernetes.io/instance=demo"

    def collected() -> bool:
        apps = stack.apps
        deployments = apps.list_namespaced_deployment(stack.namespace, label_selector=selector)
        maps = stack.core.list_namespaced_config_map(stack.namespace, label_selector=selector)
        services = stack.core.list_namespaced_service(stack.namespace, label_selector=selector)
        return not (deployments.items or maps.items or services.items)

    eventually(collected, timeout=60, what="garbage collection of the children")


def test_liveness_probe_and_metrics(stack: Stack, planboard_operator: RunningOperator) -> None:
    stack.create(planboard_body("demo"))
    eventually(lambda: stack.get().get("status", {}).get("observedGeneration") == 1)
    with urllib.request.urlopen(planboard_operator.liveness_url, timeout=5) as resp:  # noqa: S310
        assert resp.status == 200
        assert json.loads(resp.read())["reconciliations"] >= 1
    port = planboard_operator.runtime.metrics_port
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    assert 'planboard_operator_reconcile_total{kind="Planboard",result="ok"}' in text
    assert "planboard_operator_reconcile_duration_seconds_bucket" in text
    assert "planboard_operator_worker_replicas" in text
