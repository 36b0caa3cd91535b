"""The chart on a real node, as a platform engineer gets it.

``helm install --wait`` of charts/planboard: the operator runs as a Pod from the chart,
turns the chart's Planboard resource into the API, relay and worker Deployments, and those
run as Pods of the image built from this tree's Dockerfile; the backends are the dev
stack's servers on the node's address. The tests run in file order on that one release
(each leaves it as it found it) and end with ``helm uninstall``:

- the stack becomes Ready and the API answers /readyz and a register -> login -> task round
  trip through its ClusterIP Service; ``helm test`` passes;
- ``kubectl scale`` (the /scale subresource) changes the running API Pods;
- a configuration change rolls the Pods through the config-hash annotation;
- a killed API process is restarted and a deleted API Pod replaced while the Service keeps
  answering;
- Redis stopped: the API Pods stay ready, the Service keeps answering (readiness gates on
  MongoDB only) and /readyz reports redis degraded;
- a scheduled PlanboardBackup runs as a real Job writing to a hostPath PersistentVolume,
  and a PlanboardRestore brings the data back (compared through the API);
- ``helm uninstall`` leaves nothing of the release behind.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from planboard_devstack.cluster import NodeCluster
from tests.cluster.conftest import Helm, Kubectl, http, wait_for
from tests.utils.api import PASSWORD, unique_email

NAMESPACE = "planboard"
RELEASE = "pb"
STACK = "pb-planboard"  # the Planboard resource (the release's full name) and its children
API_LABELS = f"app.kubernetes.io/instance={STACK},app.kubernetes.io/component=api"
PVC = "planboard-backups"
WAIT_S = 600.0


@dataclass
class Release:
    cluster: NodeCluster
    helm: Helm
    kubectl: Kubectl
    chart: Path
    api_url: str  # through the API's ClusterIP Service
    backups_dir: Path  # the hostPath behind the backup claim, seen from the node


@dataclass
class Session:
    """An API user, registered and logged in through the Service."""

    base: str
    email: str
    token: str = ""

    def call(self, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        response = http(method, self.base + path, body, token=self.token)
        assert response.status == expect, (method, path, response.status, response.body)
        return response.body


def register_and_login(base: str) -> Session:
    session = Session(base, unique_email("cluster"))
    session.call(
        "POST",
        "/api/v1/auth/register",
        {"email": session.email, "password": PASSWORD, "name": "Grace Hopper"},
        expect=201,
    )
    tokens = session.call(
        "POST", "/api/v1/auth/login", {"email": session.email, "password": PASSWORD}
    )
    session.token = tokens["access_token"]
    return session


def api_pods(kubectl: Kubectl) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = kubectl.json("pods", "-l", API_LABELS)["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def ready(pod: dict[str, Any]) -> bool:
    statuses = pod.get("status", {}).get("containerStatuses") or []
    return bool(statuses) and all(s.get("ready") for s in statuses)


def ready_api_pods(kubectl: Kubectl, count: int) -> list[dict[str, Any]] | None:
    """The API Pods if exactly ``count`` exist and all are ready, else None."""
    pods = api_pods(kubectl)
    return pods if len(pods) == count and all(ready(p) for p in pods) else None


def ready_endpoints(kubectl: Kubectl) -> list[str]:
    slices = kubectl.json("endpointslices", "-l", f"kubernetes.io/service-name={STACK}-api")[
        "items"
    ]
    return sorted(
        address
        for s in slices
        for endpoint in s.get("endpoints") or []
        if (endpoint.get("conditions") or {}).get("ready")
        for address in endpoint["addresses"]
    )


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond["type"] == type_:
            return dict(cond)
    return {}


@dataclass
class Prober:
    """Calls the API through its Service every 100 ms in a thread and keeps every outcome:
    what a client of the Service saw while something happened to the Pods."""

    url: str
    token: str
    outcomes: list[tuple[float, str]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            path = "/readyz" if n % 2 else "/api/v1/workspaces"
            started = time.monotonic()
            try:
                response = http("GET", self.url + path, token=self.token, timeout=5)
                outcome = str(response.status)
            except OSError as exc:
                outcome = type(exc).__name__
            self.outcomes.append((started, outcome))
            n += 1
            self._stop.wait(0.1)

    def __enter__(self) -> Prober:
        # Started from the test's thread: it is born in the cluster's network namespace.
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def failures(self) -> list[tuple[float, str]]:
        return [(t, o) for t, o in self.outcomes if o != "200"]

    def longest_gap(self) -> float:
        """The longest stretch of consecutive failures, in seconds."""
        longest, start = 0.0, None
        for t, outcome in self.outcomes:
            if outcome != "200":
                start = t if start is None else start
                longest = max(longest, t - start)
            else:
                start = None
        return longest

    def summary(self) -> str:
        return f"{len(self.outcomes)} calls: {dict(Counter(o for _, o in self.outcomes))}"


# -- the release ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def release(cluster: NodeCluster, helm: Helm, chart: Path) -> Iterator[Release]:
    kubectl = Kubectl(cluster, NAMESPACE)
    backups_dir = cluster.volume_dir("backups")
    # The backup claim the chart creates binds to this hostPath volume on the node (no
    # StorageClass or provisioner here: a static PersistentVolume reserved for it).
    cluster.kubectl("create", "namespace", NAMESPACE)
    pv = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": "planboard-backups"},
        "spec": {
            "capacity": {"storage": "10Gi"},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "hostPath": {"path": str(backups_dir), "type": "Directory"},
            "claimRef": {"namespace": NAMESPACE, "name": PVC},
        },
    }
    manifest = cluster.run_dir / "backups-pv.json"
    manifest.write_text(json.dumps(pv))
    cluster.kubectl("apply", "-f", str(manifest))
    smtp_host, smtp_port = cluster.smtp
    started = time.monotonic()
    helm(
        "install",
        RELEASE,
        str(chart),
        "--namespace",
        NAMESPACE,
        "--wait",
        "--timeout",
        "10m",
        "--set",
        "stack.secret.create=true",
        "--set-string",
        f"stack.secret.values.secretKey={'k' * 16}{os.urandom(16).hex()}",
        "--set-string",
        f"stack.secret.values.mongodbUri={cluster.mongodb_uri}",
        "--set-string",
        f"stack.secret.values.redisUrl={cluster.redis_url}",
        "--set-string",
        f"stack.kafka.bootstrapServers={cluster.kafka_bootstrap}",
        "--set",
        "stack.kafka.replicationFactor=1,stack.kafka.partitions=3",
        "--set-string",
        f"stack.config.mail.host={smtp_host}",
        "--set",
        f"stack.config.mail.port={smtp_port}",
        # No scheduled backups until the backup test turns them on.
        "--set-string",
        "stack.backup.schedule=",
        # The operator's periodic reconcile every 10 s instead of 30 s: shorter waits.
        "--set",
        "operator.extraArgs={--resync-seconds=10}",
    )
    print(f"\nhelm install --wait: {time.monotonic() - started:.0f}s")
    cluster_ip = kubectl.json("service", f"{STACK}-api")["spec"]["clusterIP"]
    yield Release(cluster, helm, kubectl, chart, f"http://{cluster_ip}:8080", backups_dir)
    if RELEASE in helm("list", "-n", NAMESPACE, "-q", check=False).split():
        helm("uninstall", RELEASE, "-n", NAMESPACE, "--wait", "--timeout", "5m", check=False)


@pytest.fixture(scope="module")
def user(release: Release) -> Session:
    return register_and_login(release.api_url)


# -- the tests, in order --------------------------------------------------------------------


def test_the_stack_becomes_ready_and_answers_through_its_service(release: Release) -> None:
    kubectl, cluster = release.kubectl, release.cluster
    started = time.monotonic()
    kubectl("wait", "--for=condition=Ready", f"planboard/{STACK}", "--timeout=600s", timeout=620)
    print(f"\nPlanboard Ready {time.monotonic() - started:.0f}s after helm install returned")

    # Every Pod of the release runs the image built from this tree, on the node.
    pods = kubectl.json("pods")["items"]
    components = Counter(p["metadata"]["labels"].get("app.kubernetes.io/component") for p in pods)
    assert components["operator"] == 1 and components["api"] == 2 and components["relay"] == 1
    for pod in pods:
        assert ready(pod), pod["metadata"]["name"]
        for status in pod["status"]["containerStatuses"]:
            assert status["image"].endswith(cluster.images.planboard_ref.split("/", 1)[1])
    assert len(ready_endpoints(kubectl)) == 2

    health = http("GET", release.api_url + "/readyz")
    assert health.status == 200, health.body
    assert health.body["degraded"] == []
    assert {name: c["status"] for name, c in health.body["checks"].items()} == {
        "mongodb": "up",
        "kafka": "up",
        "redis": "up",
    }

    session = register_and_login(release.api_url)
    workspace = session.call("POST", "/api/v1/workspaces", {"name": "Cluster"}, expect=201)
    project = session.call(
        "POST",
        f"/api/v1/workspaces/{workspace['id']}/projects",
        {"name": "Real Pods", "key": "RP"},
        expect=201,
    )
    task = session.call(
        "POST",
        f"/api/v1/projects/{project['id']}/tasks",
        {"title": "Run on a real node", "estimate_hours": 2},
        expect=201,
    )
    assert task["key"] == "RP-1"
    assert session.call("GET", f"/api/v1/tasks/{task['key']}")["id"] == task["id"]


def test_helm_test_passes(release: Release) -> None:
    out = release.helm("test", RELEASE, "-n", NAMESPACE, "--timeout", "5m")
    assert "Phase:          Succeeded" in out, out
    assert f"{RELEASE}-planboard-test-readyz" in out


def test_kubectl_scale_changes_the_running_api_pods(release: Release) -> None:
    kubectl, cluster = release.kubectl, release.cluster
    kubectl("scale", f"planboard/{STACK}", "--replicas=3")
    pods = wait_for(
        lambda: ready_api_pods(kubectl, 3),
        timeout=WAIT_S,
        what="3 ready API Pods",
        cluster=cluster,
        namespace=NAMESPACE,
    )
    assert len({p["status"]["podIP"] for p in pods}) == 3
    wait_for(
        lambda: len(ready_endpoints(kubectl)) == 3,
        timeout=60,
        what="3 endpoints",
        cluster=cluster,
        namespace=NAMESPACE,
    )
    scale = json.loads(
        kubectl(
            "get",
            "--raw",
            f"/apis/planboard.dev/v1alpha1/namespaces/{NAMESPACE}/planboards/{STACK}/scale",
        )
    )
    assert scale["spec"]["replicas"] == 3
    kubectl("scale", f"planboard/{STACK}", "--replicas=2")
    wait_for(
        lambda: ready_api_pods(kubectl, 2),
        timeout=WAIT_S,
        what="back to 2 API Pods",
        cluster=cluster,
        namespace=NAMESPACE,
    )


def test_a_config_change_rolls_the_pods_by_hash(release: Release) -> None:
    kubectl, cluster = release.kubectl, release.cluster
    before = {
        p["metadata"]["name"]: p["metadata"]["annotations"]["planboard.dev/config-hash"]
        for p in api_pods(kubectl)
    }
    assert len(set(before.values())) == 1
    release.helm(
        "upgrade",
        RELEASE,
        str(release.chart),
        "-n",
        NAMESPACE,
        "--reuse-values",
        "--set",
        "stack.config.logLevel=DEBUG",
        "--wait",
        "--timeout",
        "5m",
    )

    def rolled() -> list[dict[str, Any]] | None:
        pods = ready_api_pods(kubectl, 2)
        if not pods:
            return None
        hashes = {p["metadata"]["annotations"]["planboard.dev/config-hash"] for p in pods}
        fresh = not ({p["metadata"]["name"] for p in pods} & set(before))
        return pods if fresh and hashes.isdisjoint(set(before.values())) else None

    pods = wait_for(
        rolled,
        timeout=WAIT_S,
        what="API Pods rolled to the new config hash",
        cluster=cluster,
        namespace=NAMESPACE,
    )
    assert len({p["metadata"]["annotations"]["planboard.dev/config-hash"] for p in pods}) == 1
    env = kubectl("exec", pods[0]["metadata"]["name"], "--", "printenv", "PLANBOARD_LOG_LEVEL")
    assert env.strip() == "DEBUG"


def test_a_killed_api_pod_is_replaced_while_the_service_keeps_answering(
    release: Release, user: Session
) -> None:
    kubectl, cluster = release.kubectl, release.cluster
    pods = wait_for(
        lambda: ready_api_pods(kubectl, 2),
        timeout=WAIT_S,
        what="2 ready API Pods",
        cluster=cluster,
        namespace=NAMESPACE,
    )
    killed, deleted = pods[0], pods[1]
    with Prober(release.api_url, user.token) as prober:
        time.sleep(2)
        # 1. The API process of one Pod SIGKILLed on the node: the kubelet restarts it.
        pid = container_pid(cluster, killed)
        os.kill(pid, signal.SIGKILL)
        wait_for(
            lambda: (
                (p := pod_named(kubectl, killed["metadata"]["name"])) is not None
                and p["status"]["containerStatuses"][0]["restartCount"] >= 1
                and ready(p)
            ),
            timeout=WAIT_S,
            what="the killed container restarted and ready",
            cluster=cluster,
            namespace=NAMESPACE,
        )
        # 2. The other Pod deleted at once (no grace): its ReplicaSet replaces it.
        kubectl(
            "delete",
            "pod",
            deleted["metadata"]["name"],
            "--grace-period=0",
            "--force",
            "--wait=false",
        )
        replaced = wait_for(
            lambda: (
                (now := ready_api_pods(kubectl, 2))
                and deleted["metadata"]["name"] not in {p["metadata"]["name"] for p in now}
                and now
            ),
            timeout=WAIT_S,
            what="a replacement API Pod ready",
            cluster=cluster,
            namespace=NAMESPACE,
        )
        time.sleep(3)
    assert deleted["metadata"]["name"] not in {p["metadata"]["name"] for p in replaced}
    print(
        f"\nkilled and deleted API Pods: {prober.summary()}; "
        f"longest failing stretch {prober.longest_gap():.1f}s"
    )
    # The other replica answered throughout: at most a short stretch of failures while the
    # Service's endpoints caught up with the dead Pod, and every call succeeded at the end.
    assert prober.outcomes and prober.longest_gap() <= 3.0, prober.failures()[:20]
    assert len(prober.failures()) <= len(prober.outcomes) * 0.1, prober.summary()
    assert all(o == "200" for _, o in prober.outcomes[-20:]), prober.outcomes[-20:]


def test_with_redis_stopped_the_pods_stay_ready_and_the_service_answers(
    release: Release, user: Session
) -> None:
    kubectl, cluster = release.kubectl, release.cluster
    endpoints = ready_endpoints(kubectl)
    assert len(endpoints) == 2
    cluster.stop_backend("redis")
    try:
        with Prober(release.api_url, user.token) as prober:
            # Four readiness periods (5 s each; failureThreshold 2 took ~10 s before).
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                assert ready_endpoints(kubectl) == endpoints
                time.sleep(2)
            health = http("GET", release.api_url + "/readyz")
            assert health.status == 200, health.body
            assert health.body["degraded"] == ["redis"]
            assert health.body["checks"]["redis"]["status"] == "down"
            # Served, degraded: logins (rate limits fail open) and writes.
            session = register_and_login(release.api_url)
            workspace = session.call("POST", "/api/v1/workspaces", {"name": "No Redis"}, expect=201)
            assert (
                session.call("GET", f"/api/v1/workspaces/{workspace['id']}")["name"] == "No Redis"
            )
        print(f"\nredis stopped: {prober.summary()}")
        assert not prober.failures(), prober.failures()[:20]
    finally:
        cluster.start_backend("redis")
    wait_for(
        lambda: http("GET", release.api_url + "/readyz").body["degraded"] == [],
        timeout=60,
        what="redis reported up again",
        cluster=cluster,
        namespace=NAMESPACE,
    )


def test_with_redis_gating_readiness_the_same_outage_empties_the_service(
    release: Release,
) -> None:
    """The rule the readiness fix replaced, on the same node: with redis in
    PLANBOARD_READY_CHECKS (as every check was before) a Redis outage takes every API Pod
    out of the Service, though the API could serve. The setting still works for those who
    want it strict."""
    kubectl, cluster = release.kubectl, release.cluster

    def ready_checks(value: str) -> list[dict[str, Any]]:
        release.helm(
            "upgrade",
            RELEASE,
            str(release.chart),
            "-n",
            NAMESPACE,
            "--reuse-values",
            "--set-string",
            f"stack.config.extra.PLANBOARD_READY_CHECKS={value}",
            "--wait",
            "--timeout",
            "5m",
        )

        def rolled() -> list[dict[str, Any]] | None:
            pods = ready_api_pods(kubectl, 2)
            if not pods:
                return None
            for pod in pods:
                env = kubectl(
                    "exec",
                    pod["metadata"]["name"],
                    "--",
                    "printenv",
                    "PLANBOARD_READY_CHECKS",
                    check=False,
                )
                if env.strip() != value.replace("\\,", ","):
                    return None
            return pods

        pods: list[dict[str, Any]] = wait_for(
            rolled,
            timeout=WAIT_S,
            what=f"API Pods with PLANBOARD_READY_CHECKS={value}",
            cluster=cluster,
            namespace=NAMESPACE,
            interval=2,
        )
        return pods

    ready_checks("mongodb\\,kafka\\,redis")
    try:
        cluster.stop_backend("redis")
        stopped = time.monotonic()
        try:
            wait_for(
                lambda: ready_endpoints(kubectl) == [],
                timeout=90,
                what="the API Service without endpoints",
                cluster=cluster,
                namespace=NAMESPACE,
                interval=0.5,
            )
            emptied = time.monotonic() - stopped
            try:
                answer: object = http("GET", release.api_url + "/readyz", timeout=3).status
            except OSError as exc:  # no endpoint left: kube-proxy rejects the connection
                answer = type(exc).__name__
        finally:
            cluster.start_backend("redis")
        print(
            f"\nredis gating readiness: no endpoint left {emptied:.1f}s after the stop ({answer})"
        )
        assert answer != 200
        wait_for(
            lambda: len(ready_endpoints(kubectl)) == 2,
            timeout=120,
            what="both API Pods back in the Service",
            cluster=cluster,
            namespace=NAMESPACE,
        )
    finally:
        ready_checks("mongodb")


def test_a_scheduled_backup_runs_as_a_job_and_a_restore_brings_the_data_back(
    release: Release,
) -> None:
    kubectl, cluster, helm = release.kubectl, release.cluster, release.helm
    session = register_and_login(release.api_url)
    workspace = session.call("POST", "/api/v1/workspaces", {"name": "Backed up"}, expect=201)
    project = session.call(
        "POST",
        f"/api/v1/workspaces/{workspace['id']}/projects",
        {"name": "Keep", "key": "KP"},
        expect=201,
    )
    tasks_path = f"/api/v1/projects/{project['id']}/tasks"
    kept = [session.call("POST", tasks_path, {"title": f"task {i}"}, expect=201) for i in range(3)]

    # Scheduled backups on (every minute): the operator creates a PlanboardBackup and runs
    # `planboard backup` as a Job of the image, writing to the hostPath claim.
    helm(
        "upgrade",
        RELEASE,
        str(release.chart),
        "-n",
        NAMESPACE,
        "--reuse-values",
        "--set-string",
        "stack.backup.schedule=* * * * *",
        "--wait",
        "--timeout",
        "5m",
    )

    def completed_backup() -> dict[str, Any] | None:
        items = kubectl.json("planboardbackups", "-l", "planboard.dev/scheduled=true")["items"]
        done = [b for b in items if condition(b, "Complete").get("status") == "True"]
        failed = [b for b in items if condition(b, "Complete").get("reason") == "Failed"]
        assert not failed, failed
        return done[0] if done else None

    backup = wait_for(
        completed_backup,
        timeout=WAIT_S,
        what="a scheduled backup Complete",
        cluster=cluster,
        namespace=NAMESPACE,
        interval=3,
    )
    helm(
        "upgrade",
        RELEASE,
        str(release.chart),
        "-n",
        NAMESPACE,
        "--reuse-values",
        "--set-string",
        "stack.backup.schedule=",
        "--wait",
        "--timeout",
        "5m",
    )
    name = backup["metadata"]["name"]
    job = kubectl.json("jobs", "-l", "app.kubernetes.io/component=backup")["items"]
    job = [j for j in job if j["metadata"]["ownerReferences"][0]["name"] == name]
    assert job and job[0]["status"].get("succeeded") == 1, job
    archive = release.backups_dir / STACK / f"{name}.tar.gz"
    assert archive.is_file() and archive.stat().st_size > 0, sorted(release.backups_dir.rglob("*"))
    assert backup["status"]["archive"] == f"/backups/{STACK}/{name}.tar.gz"

    # Changes after the backup: one task deleted, one added.
    session.call("DELETE", f"/api/v1/tasks/{kept[0]['id']}", expect=204)
    extra = session.call("POST", tasks_path, {"title": "after the backup"}, expect=201)
    titles = sorted(t["title"] for t in session.call("GET", tasks_path)["items"])
    assert titles == ["after the backup", "task 1", "task 2"]

    restore = {
        "apiVersion": "planboard.dev/v1alpha1",
        "kind": "PlanboardRestore",
        "metadata": {"name": "restore-1", "namespace": NAMESPACE},
        "spec": {"planboardRef": {"name": STACK}, "backupRef": {"name": name}, "drop": True},
    }
    manifest = cluster.run_dir / "restore.json"
    manifest.write_text(json.dumps(restore))
    kubectl("apply", "-f", str(manifest))
    kubectl(
        "wait",
        "--for=condition=Complete",
        "planboardrestore/restore-1",
        "--timeout=600s",
        timeout=620,
    )
    kubectl("wait", "--for=condition=Ready", f"planboard/{STACK}", "--timeout=600s", timeout=620)
    restore_job = kubectl.json("jobs", "-l", "app.kubernetes.io/component=restore")["items"]
    assert restore_job and restore_job[0]["status"].get("succeeded") == 1, restore_job

    # The data is the backup's again: the deleted task is back, the later one gone.
    def restored() -> list[str] | None:
        response = http("GET", release.api_url + tasks_path, token=session.token)
        if response.status != 200:
            return None
        return sorted(t["title"] for t in response.body["items"])

    titles = wait_for(
        restored,
        timeout=WAIT_S,
        what="the API serving after the restore",
        cluster=cluster,
        namespace=NAMESPACE,
    )
    assert titles == ["task 0", "task 1", "task 2"]
    assert session.call("GET", f"/api/v1/tasks/{kept[0]['id']}")["title"] == "task 0"
    http_gone = http("GET", release.api_url + f"/api/v1/tasks/{extra['id']}", token=session.token)
    assert http_gone.status == 404
    # The restore is this test's own object, not the release's: it goes with the test.
    kubectl("delete", "planboardrestore", "restore-1")


def test_helm_uninstall_leaves_nothing(release: Release) -> None:
    kubectl, cluster, helm = release.kubectl, release.cluster, release.helm
    helm("uninstall", RELEASE, "-n", NAMESPACE, "--wait", "--timeout", "5m")

    def leftovers() -> list[str]:
        out = kubectl(
            "get",
            "all,configmaps,secrets,serviceaccounts,roles,rolebindings,pvc,jobs,"
            "planboards,planboardbackups,planboardrestores,endpointslices,poddisruptionbudgets",
            "-o",
            "name",
        )
        names = out.split()
        # What every namespace has, and the one object the chart keeps on purpose: the
        # backup claim (helm.sh/resource-policy: keep, so backups outlive the release).
        expected = {
            "configmap/kube-root-ca.crt",
            "serviceaccount/default",
            f"persistentvolumeclaim/{PVC}",
        }
        return sorted(set(names) - expected)

    wait_for(
        lambda: leftovers() == [],
        timeout=300,
        what="nothing of the release left",
        cluster=cluster,
        namespace=NAMESPACE,
        interval=2,
    )
    cluster_wide = cluster.kubectl(
        "get", "clusterroles,clusterrolebindings", "-o", "name"
    ).stdout.split()
    assert not [n for n in cluster_wide if RELEASE in n or "planboard" in n.split("/", 1)[1]], (
        cluster_wide
    )
    pvc = kubectl.json("pvc", PVC)
    assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    # Nothing runs on the node for the release any more.
    assert not kubectl.json("pods")["items"]


# -- node-side helpers ------------------------------------------------------------------------


def pod_named(kubectl: Kubectl, name: str) -> dict[str, Any] | None:
    for pod in api_pods(kubectl):
        if pod["metadata"]["name"] == name:
            return pod
    return None


def container_pid(cluster: NodeCluster, pod: dict[str, Any]) -> int:
    """The host pid of a Pod's (first) container, from containerd."""
    container_id = pod["status"]["containerStatuses"][0]["containerID"].split("://", 1)[1]
    out = cluster.ctr("tasks", "ls").stdout
    for line in out.splitlines()[1:]:
        fields = line.split()
        if fields and fields[0] == container_id:
            return int(fields[1])
    raise AssertionError(f"no running task {container_id} in containerd:\n{out}")
