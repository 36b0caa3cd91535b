"""The local control plane is a real Kubernetes: API, CRDs, RBAC, GC, Helm, validation."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from planboard_devstack.helm import (
    KUBECONFORM_SCHEMA_TEMPLATE,
    ensure_helm,
    ensure_kubeconform,
    write_kubeconform_schemas,
)
from planboard_devstack.kube import KubeCluster, install_kube

from .conftest import ExternalCluster

pytestmark = pytest.mark.k8s

GROUP = "example.planboard.dev"


def eventually(check: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")


def deployment(name: str, extra_spec: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/name": name}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/name": name}},
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": "example.invalid/app:1",
                            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                        }
                    ]
                },
            },
            **(extra_spec or {}),
        },
    }


def test_apiserver_answers_version(kube_api: client.ApiClient) -> None:
    info = client.VersionApi(kube_api).get_code()
    assert info.major == "1"
    assert info.git_version.startswith("v1.")


def test_serves_the_stable_api_versions_the_chart_uses(kube_api: client.ApiClient) -> None:
    served = {
        f"{group.name}/{version.version}"
        for group in client.ApisApi(kube_api).get_api_versions().groups
        for version in group.versions
    }
    for group_version in (
        "apps/v1",
        "batch/v1",
        "autoscaling/v2",
        "policy/v1",
        "networking.k8s.io/v1",
        "rbac.authorization.k8s.io/v1",
        "apiextensions.k8s.io/v1",
        "coordination.k8s.io/v1",
    ):
        assert group_version in served


def test_crd_schema_and_cel_rules_are_enforced(kube_api: client.ApiClient) -> None:
    plural = f"widgets{uuid.uuid4().hex[:6]}"
    name = f"{plural}.{GROUP}"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": name},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"plural": plural, "singular": plural[:-1] + "x", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1alpha1",
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "required": ["size"],
                                    "properties": {
                                        "size": {"type": "integer", "minimum": 1},
                                        "maxSize": {"type": "integer"},
                                    },
                                    "x-kubernetes-validations": [
                                        {
                                            "rule": "!has(self.maxSize) || "
                                            "self.size <= self.maxSize",
                                            "message": "size must not exceed maxSize",
                                        }
                                    ],
                                },
                                "status": {
                                    "type": "object",
                                    "x-kubernetes-preserve-unknown-fields": True,
                                },
                            },
                        }
                    },
                }
            ],
        },
    }
    ext = client.ApiextensionsV1Api(kube_api)
    custom = client.CustomObjectsApi(kube_api)
    ext.create_custom_resource_definition(crd)
    try:

        def established() -> bool:
            conditions = ext.read_custom_resource_definition(name).status.conditions or []
            return any(c.type == "Established" and c.status == "True" for c in conditions)

        eventually(established, what=f"CRD {name} Established")

        def create(spec: dict[str, Any]) -> Any:
            body = {
                "apiVersion": f"{GROUP}/v1alpha1",
                "kind": "Widget",
                "metadata": {"generateName": "w-"},
                "spec": spec,
            }
            return custom.create_namespaced_custom_object(
                GROUP, "v1alpha1", "default", plural, body
            )

        created = create({"size": 3, "maxSize": 5})
        assert created["spec"] == {"size": 3, "maxSize": 5}
        for invalid, expected in (
            ({"size": "three"}, "spec.size"),  # wrong type
            ({"size": 0}, "spec.size"),  # minimum
            ({}, "spec.size"),  # required
            ({"size": 6, "maxSize": 5}, "size must not exceed maxSize"),  # CEL rule
        ):
            with pytest.raises(ApiException) as err:
                create(invalid)
            assert err.value.status == 422, err.value.body
            assert expected in err.value.body
        # Unknown fields are pruned by a structural schema (and rejected when asked to).
        pruned = create({"size": 1, "colour": "red"})
        assert "colour" not in pruned["spec"]
    finally:
        ext.delete_custom_resource_definition(name)


def test_owned_deployment_is_garbage_collected(kube_api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(kube_api)
    apps = client.AppsV1Api(kube_api)
    owner = core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owner"), data={"a": "1"})
    )
    body = deployment("owned")
    body["metadata"]["ownerReferences"] = [
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}
    ]
    apps.create_namespaced_deployment(namespace, body)
    # The deployment controller runs: it creates the ReplicaSet (Pods stay Pending).
    eventually(
        lambda: bool(apps.list_namespaced_replica_set(namespace).items),
        what="the Deployment's ReplicaSet",
    )
    core.delete_namespaced_config_map("owner", namespace)

    def collected() -> bool:
        try:
            apps.read_namespaced_deployment("owned", namespace)
        except ApiException as exc:
            return exc.status == 404
        return False

    eventually(collected, what="garbage collection of the owned Deployment")


def test_rbac_is_enforced_for_service_account_tokens(
    kube_cluster: KubeCluster | ExternalCluster, kube_api: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(kube_api)
    rbac = client.RbacAuthorizationV1Api(kube_api)
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="reader"))
    )
    token = core.create_namespaced_service_account_token(
        "reader", namespace, client.AuthenticationV1TokenRequest(spec={"audiences": []})
    ).status.token
    # The cluster's TLS settings from the kubeconfig, but the ServiceAccount's token.
    configuration = client.Configuration()
    config.load_kube_config(
        config_file=str(kube_cluster.kubeconfig_path), client_configuration=configuration
    )
    configuration.cert_file = configuration.key_file = None
    configuration.refresh_api_key_hook = None
    configuration.api_key = {"BearerToken": f"Bearer {token}"}
    with client.ApiClient(configuration) as as_reader:
        reader = client.CoreV1Api(as_reader)
        with pytest.raises(ApiException) as err:
            reader.list_namespaced_config_map(namespace)
        assert err.value.status == 403
        rbac.create_namespaced_role(
            namespace,
            {
                "metadata": {"name": "cm-reader"},
                "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}],
            },
        )
        rbac.create_namespaced_role_binding(
            namespace,
            {
                "metadata": {"name": "cm-reader"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": "cm-reader",
                },
                "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": namespace}],
            },
        )

        def allowed() -> bool:
            try:
                reader.list_namespaced_config_map(namespace)
            except ApiException:
                return False
            return True

        eventually(allowed, timeout=15, what="the RoleBinding to take effect")
        with pytest.raises(ApiException) as err:
            reader.list_namespaced_secret(namespace)
        assert err.value.status == 403


def run(*argv: str | Path) -> CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, check=False)


def test_helm_version_runs() -> None:
    result = run(ensure_helm(), "version", "--short")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("v3.")


def test_helm_installs_a_chart(
    kube_cluster: KubeCluster | ExternalCluster, namespace: str, tmp_path: Path
) -> None:
    helm = ensure_helm()
    env_args = ("--kubeconfig", str(kube_cluster.kubeconfig_path), "--namespace", namespace)
    created = run(helm, "create", tmp_path / "demo")
    assert created.returncode == 0, created.stderr
    lint = run(helm, "lint", "--strict", tmp_path / "demo")
    assert lint.returncode == 0, lint.stdout + lint.stderr
    installed = run(helm, "install", "demo", tmp_path / "demo", *env_args)
    assert installed.returncode == 0, installed.stderr
    listed = run(helm, "list", "--output", "json", *env_args)
    assert [r["status"] for r in json.loads(listed.stdout)] == ["deployed"]
    uninstalled = run(helm, "uninstall", "demo", "--wait", *env_args)
    assert uninstalled.returncode == 0, uninstalled.stderr


@pytest.fixture
def manifests(tmp_path: Path) -> tuple[Path, Path]:
    valid = tmp_path / "valid.json"
    valid.write_text(json.dumps(deployment("valid")))
    invalid_body = deployment("invalid")
    invalid_body["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    invalid = tmp_path / "invalid.json"
    invalid.write_text(json.dumps(invalid_body))
    return valid, invalid


@pytest.fixture(scope="module")
def kubectl(kube_cluster: KubeCluster | ExternalCluster) -> Callable[..., CompletedProcess[str]]:
    """Run the kubectl built with the control plane against the cluster under test."""
    binary = install_kube() / "kubectl"

    def run_kubectl(*args: str) -> CompletedProcess[str]:
        return run(binary, "--kubeconfig", kube_cluster.kubeconfig_path, *args)

    return run_kubectl


def test_server_side_dry_run_rejects_unknown_fields(
    kubectl: Callable[..., CompletedProcess[str]], namespace: str, manifests: tuple[Path, Path]
) -> None:
    valid, invalid = manifests
    dry_run = ("apply", "--dry-run=server", "--validate=strict", "-n", namespace, "-f")
    accepted = kubectl(*dry_run, str(valid))
    assert accepted.returncode == 0, accepted.stderr
    rejected = kubectl(*dry_run, str(invalid))
    assert rejected.returncode != 0
    assert 'unknown field "spec.template.spec.containers[0].imagePullPolicyy"' in rejected.stderr


def test_kubeconform_validates_offline_with_the_apiserver_schemas(
    kubectl: Callable[..., CompletedProcess[str]],
    manifests: tuple[Path, Path],
    tmp_path: Path,
) -> None:
    openapi = kubectl("get", "--raw", "/openapi/v2")
    assert openapi.returncode == 0, openapi.stderr
    schemas = write_kubeconform_schemas(json.loads(openapi.stdout), tmp_path / "schemas")
    kubeconform = ensure_kubeconform()
    location = f"{schemas}/{KUBECONFORM_SCHEMA_TEMPLATE}"
    valid, invalid = manifests
    ok = run(kubeconform, "-strict", "-summary", "-schema-location", location, valid)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "Valid: 1" in ok.stdout
    bad = run(kubeconform, "-strict", "-schema-location", location, invalid)
    assert bad.returncode != 0
    assert "imagePullPolicyy" in bad.stdout
