"""The Helm chart (charts/planboard), the example CRs and the dev manifests, for real.

A real Helm CLI lints and renders the chart for the default values and every value set
in charts/planboard/ci/; the rendered objects are validated strictly and offline by
kubeconform against schemas generated from the local kube-apiserver (built-in kinds and
the installed CRDs) and by a server-side dry run. Then the chart is installed, tested,
upgraded and uninstalled on the local control plane; the operator, when it has
reconcilers, runs as a local process with the chart's ServiceAccount token and the
chart's own arguments, and turns the chart's Planboard into workloads.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import pytest
import yaml

from planboard_devstack.helm import (
    KUBECONFORM_SCHEMA_TEMPLATE,
    ensure_helm,
    ensure_kubeconform,
    write_kubeconform_schemas,
)
from planboard_devstack.kube import KubeCluster, install_kube
from planboard_devstack.paths import free_port

from .conftest import ExternalCluster

pytestmark = pytest.mark.k8s

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "planboard"
CRDS = REPO / "crds"
EXAMPLES = REPO / "manifests" / "examples"
DEV_MANIFESTS = REPO / "manifests" / "dev"
CI_VALUES = {path.stem: path for path in sorted((CHART / "ci").glob("*.yaml"))}
VALUE_SETS: dict[str, Path | None] = {"default": None, **CI_VALUES}
WATCHED_BY_NAMESPACED_CI = ("planboard-team-a", "planboard-team-b")
OPERATOR_STUB_MARK = "no reconcilers are built into this version yet"

Cluster = KubeCluster | ExternalCluster
Runner = Callable[..., CompletedProcess[str]]


def run(
    *argv: str | Path,
    timeout: float = 180,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
) -> CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
        input=stdin,
        env=env,
    )


def ok(result: CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"{result.args}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def eventually(check: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.25)


def docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def crd_files() -> list[Path]:
    return sorted(CRDS.glob("*.yaml"))


def requires_crds() -> None:
    if not crd_files():
        pytest.skip("crds/ has no CustomResourceDefinitions yet (the CRD owner's files)")


# -- fixtures ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def helm() -> Path:
    return ensure_helm()


@pytest.fixture(scope="module")
def kubectl(kube_cluster: Cluster) -> Runner:
    binary = install_kube() / "kubectl"

    def run_kubectl(*args: str | Path, stdin: str | None = None) -> CompletedProcess[str]:
        return run(binary, "--kubeconfig", kube_cluster.kubeconfig_path, *args, stdin=stdin)

    return run_kubectl


def render(
    helm: Path,
    values: Path | None = None,
    *extra: str,
    release: str = "pbci",
    namespace: str = "pbci",
) -> CompletedProcess[str]:
    args: list[str | Path] = [helm, "template", release, CHART, "--namespace", namespace]
    if values is not None:
        args += ["--values", values]
    return run(*args, *extra)


@pytest.fixture(scope="module")
def crds_installed(kubectl: Runner) -> list[str]:
    """The repository's CRDs applied to the cluster (server-side) and Established."""
    requires_crds()
    ok(kubectl("apply", "--server-side", "--force-conflicts", "-f", CRDS))
    names = [docs(path.read_text())[0]["metadata"]["name"] for path in crd_files()]
    for name in names:
        ok(kubectl("wait", "--for=condition=Established", "--timeout=60s", f"crd/{name}"))
    return names


@pytest.fixture(scope="module")
def schema_location(kubectl: Runner, crds_installed: list[str], tmp_path_factory: Any) -> str:
    """kubeconform's -schema-location for the cluster's /openapi/v2 (with the CRDs)."""

    def openapi() -> dict[str, Any] | None:
        result = kubectl("get", "--raw", "/openapi/v2")
        if result.returncode != 0:
            return None
        document: dict[str, Any] = json.loads(result.stdout)
        kinds = {
            gvk.get("kind")
            for schema in document.get("definitions", {}).values()
            for gvk in schema.get("x-kubernetes-group-version-kind", [])
            if gvk.get("group") == "planboard.dev"
        }
        return document if {"Planboard", "PlanboardBackup", "PlanboardRestore"} <= kinds else None

    document = eventually(openapi, timeout=60, what="the CRDs in /openapi/v2")
    schemas = write_kubeconform_schemas(document, tmp_path_factory.mktemp("kubeconform"))
    return f"{schemas}/{KUBECONFORM_SCHEMA_TEMPLATE}"


def kubeconform(location: str, manifest: Path) -> CompletedProcess[str]:
    return run(
        ensure_kubeconform(),
        "-strict",
        "-summary",
        "-output",
        "json",
        "-schema-location",
        location,
        manifest,
    )


def assert_all_valid(result: CompletedProcess[str], expected_min: int) -> None:
    report = json.loads(result.stdout)
    bad = [r for r in report.get("resources", []) if r.get("status") != "statusValid"]
    assert result.returncode == 0 and not bad, json.dumps(bad or report, indent=1)
    summary = report["summary"]
    assert summary["invalid"] == 0 and summary["errors"] == 0 and summary["skipped"] == 0
    assert summary["valid"] >= expected_min, summary


# -- the CRDs in the chart --------------------------------------------------------------


def test_chart_crds_are_identical_to_the_repository_crds() -> None:
    requires_crds()
    chart_crds = {p.name: p.read_bytes() for p in sorted((CHART / "crds").glob("*"))}
    repo_crds = {p.name: p.read_bytes() for p in crd_files()}
    assert set(chart_crds) == set(repo_crds), "run `make chart-crds`: the file lists differ"
    drifted = [name for name in repo_crds if chart_crds[name] != repo_crds[name]]
    assert not drifted, f"charts/planboard/crds/ differs from crds/ in {drifted}: make chart-crds"


# -- lint and render --------------------------------------------------------------------


@pytest.mark.parametrize("value_set", list(VALUE_SETS))
def test_helm_lint_strict(helm: Path, value_set: str) -> None:
    values = VALUE_SETS[value_set]
    args: list[str | Path] = [helm, "lint", "--strict", CHART]
    if values is not None:
        args += ["--values", values]
    out = ok(run(*args))
    assert "1 chart(s) linted, 0 chart(s) failed" in out


WORKLOAD_KINDS = {"Deployment", "Pod", "StatefulSet", "Job", "DaemonSet"}
RECOMMENDED_LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/component",
    "app.kubernetes.io/part-of",
    "helm.sh/chart",
)


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    if obj["kind"] == "Pod":
        spec: dict[str, Any] = obj["spec"]
        return spec
    template: dict[str, Any] = obj["spec"]["template"]["spec"]
    return template


def assert_hardened(obj: dict[str, Any]) -> None:
    where = f"{obj['kind']}/{obj['metadata']['name']}"
    spec = pod_spec(obj)
    pod_sc = spec.get("securityContext", {})
    assert pod_sc.get("runAsNonRoot") is True, where
    assert pod_sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
    for container in spec["containers"] + spec.get("initContainers", []):
        sc = container.get("securityContext", {})
        assert sc.get("runAsNonRoot") is True, where
        assert sc.get("readOnlyRootFilesystem") is True, where
        assert sc.get("allowPrivilegeEscalation") is False, where
        assert sc.get("capabilities", {}).get("drop") == ["ALL"], where
        assert sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
        resources = container.get("resources", {})
        assert resources.get("requests", {}).get("memory"), where
        assert resources.get("limits", {}).get("memory"), where
        assert ":" in container["image"] and not container["image"].endswith(":latest"), where


@pytest.mark.parametrize("value_set", list(VALUE_SETS))
def test_rendered_objects_follow_the_conventions(helm: Path, value_set: str) -> None:
    objects = docs(ok(render(helm, VALUE_SETS[value_set])))
    assert objects
    kinds = [o["kind"] for o in objects]
    for obj in objects:
        labels = obj["metadata"].get("labels", {})
        missing = [key for key in RECOMMENDED_LABELS if key not in labels]
        assert not missing, f"{obj['kind']}/{obj['metadata']['name']} lacks {missing}"
        assert labels["app.kubernetes.io/instance"] == "pbci"
        if obj["kind"] == "Deployment":
            selector = obj["spec"]["selector"]["matchLabels"]
            assert set(selector) == {"app.kubernetes.io/name", "app.kubernetes.io/instance"}
            template_labels = obj["spec"]["template"]["metadata"]["labels"]
            assert selector.items() <= template_labels.items()
        if obj["kind"] in WORKLOAD_KINDS:
            assert_hardened(obj)
    values = yaml.safe_load((VALUE_SETS[value_set] or CHART / "values.yaml").read_text()) or {}
    operator_enabled = values.get("operator", {}).get("enabled", True)
    stack_enabled = values.get("stack", {}).get("enabled", True)
    assert ("Deployment" in kinds) == operator_enabled
    assert ("Planboard" in kinds) == stack_enabled
    if operator_enabled:
        (operator,) = [o for o in objects if o["kind"] == "Deployment"]
        assert operator["spec"]["replicas"] == 1
        assert operator["spec"]["strategy"] == {"type": "Recreate"}
        container = pod_spec(operator)["containers"][0]
        assert container["command"] == ["planboard-operator"]
        assert not [a for a in container["args"] if a.startswith("--peering")]  # standalone
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["port"] == "health"
        assert {"ServiceAccount", "ClusterRole", "ClusterRoleBinding"} <= set(kinds)
    if stack_enabled:
        (test_pod,) = [o for o in objects if o["kind"] == "Pod"]
        assert test_pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
        assert any(
            arg.endswith("-api.pbci.svc:8080/readyz")
            for arg in pod_spec(test_pod)["containers"][0]["command"]
        )


def test_the_planboard_matches_the_agreed_shape(helm: Path) -> None:
    """The default values render the example of docs/design/planboard-crd.md."""
    objects = docs(ok(render(helm)))
    (planboard,) = [o for o in objects if o["kind"] == "Planboard"]
    assert planboard["apiVersion"] == "planboard.dev/v1alpha1"
    design = (REPO / "docs" / "design" / "planboard-crd.md").read_text()
    example = yaml.safe_load(design.split("```yaml", 1)[1].split("```", 1)[0])
    spec = planboard["spec"]
    assert set(spec) == set(example["spec"])
    for key in ("paused", "secretKeyRef", "mongodb", "redis", "api", "relay", "config"):
        expected = example["spec"][key]
        if key in ("api", "relay"):
            expected = {**expected, "resources": spec[key]["resources"]}
        assert spec[key] == expected, key
    assert spec["kafka"] == example["spec"]["kafka"]
    assert spec["workers"]["groups"] == example["spec"]["workers"]["groups"]
    assert spec["backup"] == example["spec"]["backup"]
    assert spec["image"] == {**example["spec"]["image"], "repository": spec["image"]["repository"]}


def test_s3_backups_render_s3_storage_only(helm: Path) -> None:
    objects = docs(ok(render(helm, CI_VALUES["s3-backups-values"])))
    (planboard,) = [o for o in objects if o["kind"] == "Planboard"]
    assert planboard["spec"]["backup"]["storage"] == {
        "s3": {
            "bucket": "planboard-backups",
            "prefix": "prod/planboard/",
            "endpoint": "https://minio.storage.svc:9000",
            "region": "eu-central-1",
            "credentialsSecretRef": {"name": "planboard-s3-credentials"},
        }
    }
    assert not [o for o in objects if o["kind"] == "PersistentVolumeClaim"]


def test_config_env_renders_into_the_planboard(helm: Path) -> None:
    env = [
        {"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": "http://otel-collector:4318"},
        {"name": "SENTRY_DSN", "valueFrom": {"secretKeyRef": {"name": "sentry", "key": "dsn"}}},
    ]
    objects = docs(ok(render(helm, None, "--set-json", f"stack.config.env={json.dumps(env)}")))
    (planboard,) = [o for o in objects if o["kind"] == "Planboard"]
    assert planboard["spec"]["config"]["env"] == env
    (default,) = [o for o in docs(ok(render(helm))) if o["kind"] == "Planboard"]
    assert default["spec"]["config"]["env"] == []


def test_namespaced_operator_gets_roles_only_where_it_watches(helm: Path) -> None:
    objects = docs(ok(render(helm, CI_VALUES["namespaced-operator-values"])))
    roles = {o["metadata"]["namespace"] for o in objects if o["kind"] == "Role"}
    bindings = {o["metadata"]["namespace"] for o in objects if o["kind"] == "RoleBinding"}
    assert roles == bindings == set(WATCHED_BY_NAMESPACED_CI)
    (cluster_role,) = [o for o in objects if o["kind"] == "ClusterRole"]
    cluster_resources = {r for rule in cluster_role["rules"] for r in rule["resources"]}
    assert cluster_resources == {"customresourcedefinitions", "namespaces"}
    (operator,) = [o for o in objects if o["kind"] == "Deployment"]
    args = pod_spec(operator)["containers"][0]["args"]
    assert [a for a in args if a.startswith("--namespace=")] == [
        f"--namespace={ns}" for ns in WATCHED_BY_NAMESPACED_CI
    ]
    assert "--all-namespaces" not in args


def test_rbac_is_least_privilege(helm: Path) -> None:
    objects = docs(ok(render(helm)))
    (cluster_role,) = [o for o in objects if o["kind"] == "ClusterRole"]
    granted = {
        (group, resource, verb)
        for rule in cluster_role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    for rule in cluster_role["rules"]:
        assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"]
        assert "nonResourceURLs" not in rule and "resourceNames" not in rule
    resources = {r for _, r, _ in granted}
    assert "secrets" not in resources and "pods" not in resources
    assert not any(
        v in {"deletecollection", "escalate", "bind", "impersonate"} for *_, v in granted
    )
    assert ("", "events", "create") in granted
    assert ("apiextensions.k8s.io", "customresourcedefinitions", "watch") in granted
    assert ("apiextensions.k8s.io", "customresourcedefinitions", "create") not in granted
    assert ("planboard.dev", "planboards", "create") not in granted
    assert ("planboard.dev", "planboardbackups", "create") in granted
    assert ("planboard.dev", "planboards/finalizers", "update") in granted
    for group, resource in (
        ("apps", "deployments"),
        ("", "services"),
        ("", "configmaps"),
        ("autoscaling", "horizontalpodautoscalers"),
        ("policy", "poddisruptionbudgets"),
        ("batch", "jobs"),
    ):
        for verb in ("get", "list", "watch", "create", "delete"):
            assert (group, resource, verb) in granted, (group, resource, verb)


# -- the values schema --------------------------------------------------------------------

BAD_VALUES: list[tuple[str, list[str], str]] = [
    ("unknown top-level key", ["--set", "replicaCount=2"], "additional properties 'replicaCount'"),
    ("unknown nested key", ["--set", "stack.api.replica=2"], "additional properties 'replica'"),
    ("wrong type", ["--set", "stack.api.replicas=two"], "got string, want integer"),
    ("negative replicas", ["--set", "stack.api.replicas=-1"], "minimum"),
    ("two operators", ["--set", "operator.replicas=2"], "maximum"),
    ("bad log level enum", ["--set", "stack.config.logLevel=TRACE"], "value must be one of"),
    ("bad pull policy enum", ["--set", "image.pullPolicy=Sometimes"], "value must be one of"),
    ("latest tag", ["--set", "image.tag=latest"], "/image/tag"),
    ("bad storage type", ["--set", "stack.backup.storage.type=nfs"], "value must be one of"),
    ("zero retention", ["--set", "stack.backup.retention=0"], "minimum"),
    ("bad quantity", ["--set", "stack.api.resources.requests.cpu=lots"], "/requests/cpu"),
    ("bad cron", ["--set", "stack.backup.schedule=daily"], "/backup/schedule"),
    ("short secret key", ["--set", "stack.secret.values.secretKey=short"], "/secretKey"),
    ("bad extra name", ["--set", "stack.config.extra.FOO=1"], "/config/extra"),
    (
        "bad env name",
        ["--set-json", 'stack.config.env=[{"name":"PATH","value":"/x"}]'],
        "/config/env/0/name",
    ),
    (
        "env value and valueFrom",
        [
            "--set-json",
            'stack.config.env=[{"name":"SENTRY_DSN","value":"x",'
            '"valueFrom":{"secretKeyRef":{"name":"s","key":"dsn"}}}]',
        ],
        "/config/env/0",
    ),
    (
        "env unknown key",
        ["--set-json", 'stack.config.env=[{"name":"OTEL_X","value":"1","secret":"y"}]'],
        "additional properties 'secret'",
    ),
    ("name too long", ["--set", "stack.name=" + "a" * 31], "/stack/name"),
    ("bad bootstrap", ["--set", "stack.kafka.bootstrapServers=kafka"], "/bootstrapServers"),
    ("port out of range", ["--set", "stack.config.mail.port=70000"], "maximum"),
    ("bad rate limit", ["--set", "stack.config.rateLimits.api=fast"], "/rateLimits/api"),
    (
        "min above max",
        [
            "--set",
            "stack.api.autoscaling.minReplicas=5",
            "--set",
            "stack.api.autoscaling.maxReplicas=3",
        ],
        "minReplicas must not exceed",
    ),
    ("s3 without bucket", ["--set", "stack.backup.storage.type=s3"], "s3.bucket is required"),
    ("secret without values", ["--set", "stack.secret.create=true"], "secretKey is required"),
    (
        "duplicate worker group",
        [
            "--set-json",
            'stack.workers.groups=[{"name":"a","minReplicas":1,"maxReplicas":1,'
            '"lagPerReplica":1},{"name":"a","minReplicas":1,"maxReplicas":1,"lagPerReplica":1}]',
        ],
        "listed twice",
    ),
]


@pytest.mark.parametrize(("case", "args", "message"), BAD_VALUES, ids=[c[0] for c in BAD_VALUES])
def test_bad_values_are_refused(helm: Path, case: str, args: list[str], message: str) -> None:
    result = render(helm, None, *args)
    assert result.returncode != 0, f"{case}: accepted"
    assert message in result.stderr, result.stderr


def test_schema_is_strict_everywhere() -> None:
    """Every object node with properties refuses unknown keys; every leaf is typed."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    loose: list[str] = []

    def visit(node: Any, path: str) -> None:
        if isinstance(node, dict):
            if "properties" in node and node.get("additionalProperties") is not False:
                loose.append(path)
            if "properties" in node and node.get("type") != "object":
                loose.append(path + " (untyped)")
            for key, value in node.items():
                visit(value, f"{path}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                visit(value, f"{path}[{i}]")

    visit(schema, "")
    assert not loose, loose


def leaf_paths(node: Any, prefix: str = "") -> Iterator[str]:
    if isinstance(node, dict) and node and not prefix.endswith(("resources", "Context")):
        for key, value in node.items():
            if key in ("requests", "limits"):
                continue
            yield from leaf_paths(value, f"{prefix}.{key}" if prefix else key)
    else:
        yield prefix


def test_every_value_is_documented_in_the_readme() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    readme = (CHART / "README.md").read_text()
    paths = [p for p in leaf_paths(values) if not p.startswith("stack.workers.groups")]
    assert len(paths) > 60
    undocumented = [p for p in paths if f"`{p}`" not in readme]
    assert not undocumented, undocumented
    assert "`stack.workers.groups`" in readme


@pytest.fixture
def dry_run_install(
    helm: Path, kube_cluster: Cluster, crds_installed: list[str]
) -> Callable[..., str]:
    """`helm install --dry-run=client`: manifests and NOTES (Helm asks the cluster version)."""

    def install(*args: str) -> str:
        return ok(
            run(
                helm, "install", "pbci", CHART, "--namespace", "pbci", "--dry-run=client",
                "--kubeconfig", str(kube_cluster.kubeconfig_path), *args,
            )
        )  # fmt: skip

    return install


def test_notes_give_next_steps_and_warnings(dry_run_install: Callable[..., str]) -> None:
    notes = dry_run_install().split("NOTES:", 1)[1]
    assert "kubectl -n pbci wait --for=condition=Ready planboard/pbci-planboard" in notes
    assert "helm test pbci -n pbci" in notes
    assert "kubectl apply --server-side -f crds/" in notes
    assert 'Make sure the Secret "planboard-secrets" exists' in notes
    assert "WARNING: stack.config.mail.host is the placeholder" in notes
    assert "WARNING: stack.secret.create" not in notes
    dev = dry_run_install("--values", str(CI_VALUES["dev-values"])).split("NOTES:", 1)[1]
    assert "WARNING: stack.secret.create=true stores the signing key" in dev
    assert "WARNING: stack.api.replicas=1" in dev
    assert "WARNING: stack.kafka.replicationFactor=1" in dev
    assert "WARNING: stack.backup.schedule is empty" in dev
    bare = dry_run_install(
        "--set", "stack.relay.resources=null", "--set", "operator.resources=null"
    ).split("NOTES:", 1)[1]
    assert "WARNING: stack.relay.resources is empty" in bare
    assert "WARNING: operator.resources is empty" in bare
    stack_only = dry_run_install("--values", str(CI_VALUES["stack-only-values"]))
    assert "WARNING: operator.enabled=false" in stack_only


# -- schemas: kubeconform (offline, strict) and server-side dry runs ---------------------


@pytest.mark.parametrize("value_set", list(VALUE_SETS))
def test_rendered_chart_is_valid_for_kubeconform(
    helm: Path, schema_location: str, value_set: str, tmp_path: Path
) -> None:
    manifest = tmp_path / "rendered.yaml"
    manifest.write_text(ok(render(helm, VALUE_SETS[value_set], "--include-crds")))
    assert_all_valid(kubeconform(schema_location, manifest), expected_min=len(crd_files()) + 1)


@pytest.fixture(scope="module")
def watched_namespaces(kubectl: Runner) -> Iterator[None]:
    """The namespaces ci/namespaced-operator-values.yaml watches (its Roles live there)."""
    created = []
    for ns in WATCHED_BY_NAMESPACED_CI:
        if kubectl("get", "namespace", ns).returncode != 0:
            ok(kubectl("create", "namespace", ns))
            created.append(ns)
    yield
    for ns in created:
        kubectl("delete", "namespace", ns, "--wait=false")


@pytest.mark.parametrize("value_set", list(VALUE_SETS))
@pytest.mark.usefixtures("crds_installed", "watched_namespaces")
def test_rendered_chart_passes_a_server_side_dry_run(
    helm: Path, kubectl: Runner, namespace: str, value_set: str, tmp_path: Path
) -> None:
    manifest = tmp_path / "rendered.yaml"
    manifest.write_text(ok(render(helm, VALUE_SETS[value_set], namespace=namespace)))
    out = ok(kubectl("apply", "--dry-run=server", "--validate=strict", "-f", manifest))
    assert "(server dry run)" in out


def test_example_crs_are_valid(
    kubectl: Runner, schema_location: str, namespace: str, tmp_path: Path
) -> None:
    examples = sorted(EXAMPLES.glob("*.yaml"))
    assert {p.name for p in examples} == {
        "planboard.yaml",
        "planboardbackup.yaml",
        "planboardrestore.yaml",
    }
    for path in examples:
        assert_all_valid(kubeconform(schema_location, path), expected_min=1)
        out = ok(
            kubectl("apply", "--dry-run=server", "--validate=strict", "-n", namespace, "-f", path)
        )
        assert "created (server dry run)" in out


@pytest.fixture
def dev_namespace(kubectl: Runner) -> Iterator[str]:
    """The dev manifests name the namespace "planboard": make sure it exists for the dry run."""
    ns = yaml.safe_load((DEV_MANIFESTS / "namespace.yaml").read_text())["metadata"]["name"]
    created = kubectl("get", "namespace", ns).returncode != 0
    if created:
        ok(kubectl("apply", "-f", DEV_MANIFESTS / "namespace.yaml"))
    yield ns
    if created:
        kubectl("delete", "namespace", ns, "--wait=false")


def test_dev_manifests_are_valid(kubectl: Runner, schema_location: str, dev_namespace: str) -> None:
    files = sorted(DEV_MANIFESTS.glob("*.yaml"))
    assert {p.name for p in files} >= {"mongodb.yaml", "kafka.yaml", "redis.yaml"}
    kinds: set[str] = set()
    for path in files:
        objects = docs(path.read_text())
        kinds |= {o["kind"] for o in objects}
        assert_all_valid(kubeconform(schema_location, path), expected_min=len(objects))
        for obj in objects:
            if obj["kind"] in WORKLOAD_KINDS:
                spec = pod_spec(obj)
                assert spec["securityContext"]["runAsNonRoot"] is True
                for container in spec["containers"]:
                    assert container["resources"]["limits"]["memory"]
                    assert container["securityContext"]["allowPrivilegeEscalation"] is False
                    assert not container["image"].endswith(":latest")
                    assert ":" in container["image"]
        out = ok(kubectl("apply", "--dry-run=server", "--validate=strict", "-f", path))
        assert "(server dry run)" in out
    assert {"StatefulSet", "Job", "Deployment", "Service"} <= kinds
    mongo = (DEV_MANIFESTS / "mongodb.yaml").read_text()
    assert "--replSet" in mongo and "rs.initiate" in mongo
    kafka = (DEV_MANIFESTS / "kafka.yaml").read_text()
    assert "apache/kafka:" in kafka and "KAFKA_PROCESS_ROLES" in kafka


# -- install, test, upgrade, uninstall on the local control plane -----------------------


def helm_env(kube_cluster: Cluster, namespace: str) -> tuple[str, ...]:
    return ("--kubeconfig", str(kube_cluster.kubeconfig_path), "--namespace", namespace)


def get_json(kubectl: Runner, *args: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(ok(kubectl("get", *args, "-o", "json")))
    return result


def exists(kubectl: Runner, *args: str) -> bool:
    result = kubectl("get", *args)
    if result.returncode == 0:
        return True
    assert "NotFound" in result.stderr or "not found" in result.stderr, result.stderr
    return False


class _Readyz(BaseHTTPRequestHandler):
    """/readyz as the API answers it: ``server.ready`` (200, every check up), "degraded"
    (200, Redis down: the pods stay ready) or False (503, MongoDB down)."""

    def do_GET(self) -> None:
        state = self.server.ready if self.path == "/readyz" else False  # type: ignore[attr-defined]
        up, down = {"status": "up", "latency_ms": 1.0}, {"status": "down", "error": "Refused"}
        checks = {"mongodb": up, "kafka": up, "redis": down if state == "degraded" else up}
        if state:
            answer = {
                "status": "ready",
                "checks": checks,
                "degraded": [] if state is True else ["redis"],
            }
            code = 200
        else:
            answer = {"status": 503, "down": ["mongodb"], "checks": {**checks, "mongodb": down}}
            code = 503
        body = json.dumps(answer).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def readyz_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Readyz)
    server.ready = True  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def run_test_pod_command(pod: dict[str, Any], url: str) -> CompletedProcess[str]:
    """The helm test Pod's own command, run here with the API URL swapped for ``url``."""
    command = list(pod["spec"]["containers"][0]["command"])
    assert command[:2] == ["python", "-c"]
    assert command[3].endswith(".svc:8080/readyz")
    command[0], command[3] = sys.executable, url
    return run(*command, timeout=60)


def uninstall_with_cleanup_hook(
    helm: Path, kubectl: Runner, kube_cluster: Cluster, namespace: str, release: str, tmp: Path
) -> None:
    """`helm uninstall --wait`, playing the kubelet for the pre-delete hook Job.

    The hook Job's own command runs here with its own ServiceAccount's token (so the
    hook's RBAC is exercised too); then the Job is marked Complete, as the Job controller
    would, and Helm goes on deleting the release.
    """
    ns = ("-n", namespace)
    job_name = f"{release}-planboard-cleanup"
    uninstaller = subprocess.Popen(
        [str(helm), "uninstall", release, "--wait", "--timeout", "180s",
         *helm_env(kube_cluster, namespace)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    try:
        job = eventually(
            lambda: (
                exists(kubectl, "job", job_name, *ns) and get_json(kubectl, "job", job_name, *ns)
            ),
            what="the pre-delete hook Job",
        )
        pod = job["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == job_name
        command = list(pod["containers"][0]["command"])
        assert command[:2] == ["python", "-c"]
        command[0] = sys.executable
        kubeconfig = service_account_kubeconfig(
            kube_cluster, kubectl, namespace, job_name, tmp / "cleanup-kubeconfig"
        )
        hook = run(*command, env={**os.environ, "KUBECONFIG": str(kubeconfig)}, timeout=400)
        assert hook.returncode == 0, hook.stdout + hook.stderr
        assert " is gone" in hook.stdout
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        conditions = [
            {"type": kind, "status": "True", "lastProbeTime": now, "lastTransitionTime": now}
            for kind in ("SuccessCriteriaMet", "Complete")
        ]
        status = {"startTime": now, "completionTime": now, "succeeded": 1, "conditions": conditions}
        ok(
            kubectl(
                "patch", "job", job_name, *ns, "--subresource=status", "--type=merge",
                "-p", json.dumps({"status": status}),
            )
        )  # fmt: skip
        out, _ = uninstaller.communicate(timeout=180)
    finally:
        if uninstaller.poll() is None:
            uninstaller.kill()
            uninstaller.wait()
    assert uninstaller.returncode == 0, out
    assert not exists(kubectl, "planboards", "dev", *ns)


@pytest.mark.usefixtures("crds_installed")
def test_install_test_upgrade_uninstall(
    helm: Path,
    kubectl: Runner,
    kube_cluster: Cluster,
    namespace: str,
    readyz_server: ThreadingHTTPServer,
    tmp_path: Path,
) -> None:
    env = helm_env(kube_cluster, namespace)
    values = CI_VALUES["dev-values"]
    ns = ("-n", namespace)
    ok(run(helm, "install", "pb", CHART, "--values", values, *env))
    listed = json.loads(ok(run(helm, "list", "--output", "json", *env)))
    assert [(r["name"], r["status"]) for r in listed] == [("pb", "deployed")]

    # What the chart created.
    operator = get_json(kubectl, "deployment", "pb-planboard-operator", *ns)
    assert operator["spec"]["template"]["spec"]["serviceAccountName"] == "pb-planboard-operator"
    eventually(
        lambda: ok(kubectl("get", "replicasets", *ns, "-o", "name")),
        what="the operator Deployment's ReplicaSet (the deployment controller accepted it)",
    )
    assert exists(kubectl, "serviceaccount", "pb-planboard-operator", *ns)
    cluster_name = f"{namespace}-pb-planboard-operator"
    assert exists(kubectl, "clusterrole", cluster_name)
    assert exists(kubectl, "clusterrolebinding", cluster_name)
    planboard = get_json(kubectl, "planboards", "dev", *ns)
    assert planboard["spec"]["config"]["logLevel"] == "DEBUG"
    generation = planboard["metadata"]["generation"]
    secret = get_json(kubectl, "secret", "planboard-secrets", *ns)
    assert set(secret["data"]) == {"secret-key", "mongodb-uri", "redis-url"}
    assert exists(kubectl, "pvc", "planboard-backups", *ns)

    # The ServiceAccount may do what the operator needs, and nothing else.
    sa = f"system:serviceaccount:{namespace}:pb-planboard-operator"

    def can(verb: str, resource: str, *extra: str) -> bool:
        resource, _, subresource = resource.partition("/")
        if subresource:
            extra = (*extra, f"--subresource={subresource}")
        result = kubectl("auth", "can-i", verb, resource, "--as", sa, *extra)
        return result.stdout.strip() == "yes"

    for verb, resource in [
        ("watch", "planboards.planboard.dev"),
        ("patch", "planboards.planboard.dev"),
        ("patch", "planboards.planboard.dev/status"),
        ("update", "planboards.planboard.dev/finalizers"),
        ("create", "planboardbackups.planboard.dev"),
        ("delete", "planboardbackups.planboard.dev"),
        ("patch", "planboardrestores.planboard.dev/status"),
        ("create", "deployments.apps"),
        ("patch", "services"),
        ("delete", "configmaps"),
        ("create", "horizontalpodautoscalers.autoscaling"),
        ("create", "poddisruptionbudgets.policy"),
        ("create", "jobs.batch"),
        ("create", "events"),
    ]:
        assert can(verb, resource, *ns), f"the operator may not {verb} {resource}"
    assert can("watch", "customresourcedefinitions.apiextensions.k8s.io")
    for verb, resource in [
        ("get", "secrets"),
        ("list", "pods"),
        ("create", "planboards.planboard.dev"),
        ("create", "clusterroles.rbac.authorization.k8s.io"),
        ("delete", "namespaces"),
        ("create", "customresourcedefinitions.apiextensions.k8s.io"),
        ("deletecollection", "deployments.apps"),
    ]:
        assert not can(verb, resource, *ns), f"the operator may {verb} {resource}"

    # helm test: the hook Pod's command answers for /readyz; no kubelet runs it here, so
    # its command runs locally against a stand-in and the Pod's phase is set by hand.
    tester = subprocess.Popen(
        [str(helm), "test", "pb", "--timeout", "120s", *env],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        test_pod = eventually(
            lambda: (
                exists(kubectl, "pod", "pb-planboard-test-readyz", *ns)
                and get_json(kubectl, "pod", "pb-planboard-test-readyz", *ns)
            ),
            what="the helm test Pod",
        )
        assert test_pod["spec"]["containers"][0]["command"][3] == (
            f"http://dev-api.{namespace}.svc:8080/readyz"
        )
        url = f"http://127.0.0.1:{readyz_server.server_address[1]}/readyz"
        passed = run_test_pod_command(test_pod, url)
        assert passed.returncode == 0, passed.stderr
        # Stricter than the pods' readiness: a dependency reported down fails the test.
        readyz_server.ready = "degraded"  # type: ignore[attr-defined]
        degraded = run_test_pod_command(test_pod, url)
        assert degraded.returncode == 1 and "['redis']" in degraded.stderr, degraded
        readyz_server.ready = False  # type: ignore[attr-defined]
        failed = run_test_pod_command(test_pod, url)
        assert failed.returncode == 1 and "503" in failed.stderr
        ok(
            kubectl(
                "patch",
                "pod",
                "pb-planboard-test-readyz",
                *ns,
                "--subresource=status",
                "--type=merge",
                "-p",
                json.dumps({"status": {"phase": "Succeeded"}}),
            )
        )
        out, _ = tester.communicate(timeout=120)
    finally:
        if tester.poll() is None:
            tester.kill()
            tester.wait()
    assert tester.returncode == 0, out
    assert "Phase:          Succeeded" in out

    # helm upgrade: a config change reaches the Planboard's spec (a new generation).
    ok(
        run(
            helm,
            "upgrade",
            "pb",
            CHART,
            "--values",
            values,
            "--set",
            "stack.config.logLevel=WARNING",
            *env,
        )
    )
    upgraded = get_json(kubectl, "planboards", "dev", *ns)
    assert upgraded["spec"]["config"]["logLevel"] == "WARNING"
    assert upgraded["metadata"]["generation"] == generation + 1

    # helm uninstall (its pre-delete hook deletes the Planboard first) removes everything
    # but the backup claim (resource-policy: keep).
    uninstall_with_cleanup_hook(helm, kubectl, kube_cluster, namespace, "pb", tmp_path)
    for kind, name in [
        ("deployment", "pb-planboard-operator"),
        ("serviceaccount", "pb-planboard-operator"),
        ("planboards", "dev"),
        ("secret", "planboard-secrets"),
    ]:
        eventually(
            lambda k=kind, n=name: not exists(kubectl, k, n, *ns), what=f"{kind}/{name} gone"
        )
    assert not exists(kubectl, "clusterrole", cluster_name)
    assert not exists(kubectl, "clusterrolebinding", cluster_name)
    assert exists(kubectl, "pvc", "planboard-backups", *ns)
    ok(kubectl("delete", "pvc", "planboard-backups", *ns, "--wait=false"))


# -- the operator (a local process) reconciles the chart's Planboard --------------------


def operator_missing() -> str | None:
    """Why the operator can't reconcile yet, or None when it has reconcilers."""
    main = REPO / "operator" / "planboard_operator" / "__main__.py"
    if OPERATOR_STUB_MARK in main.read_text():
        return (
            "operator/planboard_operator has no reconcilers yet (planboard-operator is the "
            "stub that exits 2): the chart's Planboard is not reconciled into workloads here"
        )
    return None


def service_account_kubeconfig(
    kube_cluster: Cluster, kubectl: Runner, namespace: str, account: str, path: Path
) -> Path:
    """A kubeconfig with the cluster's TLS settings and the ServiceAccount's token."""
    token = ok(kubectl("create", "token", account, "-n", namespace, "--duration=2h")).strip()
    admin = yaml.safe_load(Path(kube_cluster.kubeconfig_path).read_text())
    context = next(c for c in admin["contexts"] if c["name"] == admin["current-context"])
    cluster = next(c for c in admin["clusters"] if c["name"] == context["context"]["cluster"])
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [
            {
                "name": account,
                "context": {"cluster": cluster["name"], "user": account, "namespace": namespace},
            }
        ],
        "current-context": account,
    }
    path.write_text(json.dumps(config))
    path.chmod(0o600)
    return path


@pytest.mark.usefixtures("crds_installed")
def test_operator_reconciles_the_chart_planboard(
    helm: Path,
    kubectl: Runner,
    kube_cluster: Cluster,
    namespace: str,
    tmp_path: Path,
) -> None:
    missing = operator_missing()
    if missing:
        pytest.skip(missing)
    env = helm_env(kube_cluster, namespace)
    ns = ("-n", namespace)
    health_port, metrics_port = free_port(), free_port()
    settings = (
        "--values", str(CI_VALUES["dev-values"]),
        "--set-json", f'operator.watchNamespaces=["{namespace}"]',
        "--set", f"operator.healthPort={health_port}",
        "--set", f"operator.metrics.port={metrics_port}",
        "--set", "stack.api.podDisruptionBudget.enabled=true",
    )  # fmt: skip
    ok(run(helm, "install", "pb", CHART, *settings, *env))
    operator = get_json(kubectl, "deployment", "pb-planboard-operator", *ns)
    container = operator["spec"]["template"]["spec"]["containers"][0]
    assert f"--namespace={namespace}" in container["args"]
    kubeconfig = service_account_kubeconfig(
        kube_cluster, kubectl, namespace, "pb-planboard-operator", tmp_path / "sa-kubeconfig"
    )
    process_env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        **{e["name"]: e["value"] for e in container["env"] if "value" in e},
        "POD_NAMESPACE": namespace,
        "POD_NAME": "pb-planboard-operator-local",
    }
    log_path = tmp_path / "operator.log"
    binary = Path(sys.executable).parent / container["command"][0]
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [str(binary), *container["args"]],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=process_env,
            start_new_session=True,
        )

    def log_tail() -> str:
        return "\n".join(log_path.read_text(errors="replace").splitlines()[-40:])

    def alive() -> None:
        assert process.poll() is None, (
            f"planboard-operator exited {process.returncode}:\n{log_tail()}"
        )

    try:

        def config_hash() -> str | None:
            alive()
            result = kubectl("get", "deployment", "dev-api", *ns, "-o", "json")
            if result.returncode != 0:
                return None
            annotations = json.loads(result.stdout)["spec"]["template"]["metadata"].get(
                "annotations", {}
            )
            return annotations.get("planboard.dev/config-hash")

        first = eventually(config_hash, timeout=90, what="the operator's dev-api Deployment")
        for kind, name in [
            ("deployment", "dev-relay"),
            ("deployment", "dev-worker-notifications"),
            ("deployment", "dev-worker-rollups"),
            ("service", "dev-api"),
            ("configmap", "dev-config"),
            ("poddisruptionbudget", "dev-api"),
        ]:
            eventually(lambda k=kind, n=name: exists(kubectl, k, n, *ns), what=f"{kind}/{name}")
        owner = get_json(kubectl, "deployment", "dev-api", *ns)["metadata"]["ownerReferences"]
        assert [(o["kind"], o["name"]) for o in owner] == [("Planboard", "dev")]
        service = get_json(kubectl, "service", "dev-api", *ns)
        assert [(p["name"], p["port"]) for p in service["spec"]["ports"]] == [("http", 8080)]
        config = get_json(kubectl, "configmap", "dev-config", *ns)
        assert config["data"].get("PLANBOARD_LOG_LEVEL") == "DEBUG"

        ok(
            run(
                helm,
                "upgrade",
                "pb",
                CHART,
                *settings,
                "--set",
                "stack.config.logLevel=WARNING",
                *env,
            )
        )
        second = eventually(
            lambda: (h := config_hash()) != first and h, timeout=90, what="a new config hash"
        )
        assert second != first
        eventually(
            lambda: (
                get_json(kubectl, "configmap", "dev-config", *ns)["data"].get("PLANBOARD_LOG_LEVEL")
                == "WARNING"
            ),
            what="the ConfigMap to follow the upgrade",
        )

        uninstall_with_cleanup_hook(helm, kubectl, kube_cluster, namespace, "pb", tmp_path)
        eventually(
            lambda: not exists(kubectl, "deployment", "dev-api", *ns),
            timeout=90,
            what="the Planboard's children to be garbage-collected",
        )
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        kubectl("delete", "pvc", "planboard-backups", *ns, "--wait=false")


def test_image_and_dev_loop_files_reference_the_chart() -> None:
    """skaffold.yaml (structure of skaffold/v4beta11) deploys this chart and these manifests."""
    config = yaml.safe_load((REPO / "skaffold.yaml").read_text())
    assert config["apiVersion"] == "skaffold/v4beta11" and config["kind"] == "Config"
    assert set(config) <= {
        "apiVersion",
        "kind",
        "metadata",
        "build",
        "manifests",
        "deploy",
        "profiles",
        "portForward",
        "requires",
        "test",
        "verify",
        "customActions",
    }
    (artifact,) = config["build"]["artifacts"]
    assert artifact["docker"]["dockerfile"] == "Dockerfile"
    assert (REPO / artifact["context"] / "Dockerfile").is_file()
    image = artifact["image"]
    (release,) = config["deploy"]["helm"]["releases"]
    assert (REPO / release["chartPath"] / "Chart.yaml").is_file()
    assert release["setValueTemplates"] == {
        "image.repository": f"{{{{.IMAGE_REPO_{image}}}}}",
        "image.tag": f"{{{{.IMAGE_TAG_{image}}}}}",
    }
    (dev,) = [p for p in config["profiles"] if p["name"] == "dev"]
    assert dev["activation"] == [{"command": "dev"}]
    raw = [REPO / p for p in dev["manifests"]["rawYaml"]]
    assert raw and all(p.is_file() for p in raw)
    assert {p.name for p in raw} == {p.name for p in DEV_MANIFESTS.glob("*.yaml")}
    assert raw[0].name == "namespace.yaml"
    assert set(dev["deploy"]) == {"kubectl", "helm"}
    (dev_release,) = dev["deploy"]["helm"]["releases"]
    for values in dev_release["valuesFiles"]:
        assert (REPO / values).is_file()
    allowed_release_keys = {
        "name", "chartPath", "remoteChart", "valuesFiles", "namespace", "version",
        "setValues", "setValueTemplates", "setFiles", "createNamespace", "wait",
        "recreatePods", "skipBuildDependencies", "skipTests", "useHelmSecrets", "repo",
        "upgradeOnChange", "overrides", "packaged", "dependsOn",
    }  # fmt: skip
    assert set(dev_release) <= allowed_release_keys and set(release) <= allowed_release_keys
    (forward,) = dev["portForward"]
    assert forward["resourceName"] == "dev-api" and forward["port"] == 8080
    dev_values = yaml.safe_load((REPO / dev_release["valuesFiles"][0]).read_text())
    assert dev_values["stack"]["name"] + "-api" == forward["resourceName"]
    uid = re.compile(r"^mongodb://mongodb-0\.mongodb:27017/\?replicaSet=rs0$")
    assert uid.match(dev_values["stack"]["secret"]["values"]["mongodbUri"])
