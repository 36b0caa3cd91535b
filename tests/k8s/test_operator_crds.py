"""The CRDs' schemas reject bad Planboard, PlanboardBackup and PlanboardRestore objects."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from .conftest import PB_GROUP, PB_VERSION, planboard_body

pytestmark = pytest.mark.k8s


def _set(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    *parents, last = path.split(".")
    node = body["spec"]
    for key in parents:
        node = node.setdefault(key, {})
    if value is _DELETE:
        node.pop(last, None)
    else:
        node[last] = value
    return body


_DELETE = object()
STORAGE = {"pvc": {"claimName": "b"}}
S3 = {"bucket": "bucket", "credentialsSecretRef": {"name": "s3"}}

BAD_PLANBOARDS: list[tuple[str, str, Any, str]] = [
    ("wrong enum", "config.logLevel", "VERBOSE", 'Unsupported value: "VERBOSE"'),
    ("negative replicas", "api.replicas", -1, "spec.api.replicas"),
    ("too many replicas", "relay.replicas", 11, "spec.relay.replicas"),
    ("wrong type", "api.replicas", "two", "spec.api.replicas"),
    (
        "worker min > max (CEL)",
        "workers.groups",
        [{"name": "notifications", "minReplicas": 5, "maxReplicas": 2}],
        "minReplicas must not exceed maxReplicas",
    ),
    (
        "api autoscaling min > max (CEL)",
        "api.autoscaling",
        {"enabled": True, "minReplicas": 8, "maxReplicas": 3},
        "api.autoscaling.minReplicas must not exceed maxReplicas",
    ),
    (
        "both pvc and s3",
        "backup",
        {"storage": {"pvc": {"claimName": "b"}, "s3": S3}},
        "exactly one of pvc or s3",
    ),
    ("neither pvc nor s3", "backup", {"storage": {}}, "exactly one of pvc or s3"),
    (
        "bad cron",
        "backup",
        {"schedule": "every night", "storage": STORAGE},
        "5-field cron expression",
    ),
    ("schedule without storage", "backup", {"schedule": "@daily"}, "needs backup.storage"),
    ("retention zero", "backup", {"retention": 0, "storage": STORAGE}, "spec.backup.retention"),
    ("bad group name", "workers.groups", [{"name": "Not_OK"}], "spec.workers.groups[0].name"),
    ("duplicate group", "workers.groups", [{"name": "a"}, {"name": "a"}], "Duplicate value"),
    ("extra key", "config.extra", {"DEBUG": "1"}, "extra keys must be PLANBOARD_*"),
    (
        "env name (CEL)",
        "config.env",
        [{"name": "LD_PRELOAD", "value": "/tmp/x.so"}],
        "env names must be OTEL_* or SENTRY_*",
    ),
    (
        "env PLANBOARD_ name (CEL)",
        "config.env",
        [{"name": "PLANBOARD_ENV", "value": "development"}],
        "PLANBOARD_* go in config.extra",
    ),
    (
        "env value and valueFrom (CEL)",
        "config.env",
        [
            {
                "name": "SENTRY_DSN",
                "value": "x",
                "valueFrom": {"secretKeyRef": {"name": "s", "key": "dsn"}},
            }
        ],
        "exactly one of value and valueFrom",
    ),
    ("env neither (CEL)", "config.env", [{"name": "OTEL_SDK_DISABLED"}], "exactly one of"),
    (
        "env duplicate name",
        "config.env",
        [{"name": "OTEL_SERVICE_NAME", "value": "a"}, {"name": "OTEL_SERVICE_NAME", "value": "b"}],
        "Duplicate value",
    ),
    (
        "env secret ref without key",
        "config.env",
        [{"name": "SENTRY_DSN", "valueFrom": {"secretKeyRef": {"name": "s"}}}],
        "key: Required value",
    ),
    ("bad rate limit", "config.rateLimits", {"api": "lots"}, "spec.config.rateLimits.api"),
    ("missing image", "image", _DELETE, "spec.image: Required value"),
    ("bad pull policy", "image.pullPolicy", "Sometimes", "spec.image.pullPolicy"),
    ("mongodb secret ref", "mongodb.uriSecretRef", {"name": "s"}, "key: Required value"),
]


@pytest.fixture
def custom(kube_api: client.ApiClient, planboard_crds: list[str]) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(kube_api)


def _create(custom: client.CustomObjectsApi, namespace: str, plural: str, body: Any) -> Any:
    return custom.create_namespaced_custom_object(PB_GROUP, PB_VERSION, namespace, plural, body)


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [case[1:] for case in BAD_PLANBOARDS],
    ids=[case[0] for case in BAD_PLANBOARDS],
)
def test_bad_planboards_are_rejected(
    custom: client.CustomObjectsApi, namespace: str, path: str, value: Any, expected: str
) -> None:
    body = _set(planboard_body(f"bad-{uuid.uuid4().hex[:6]}"), path, value)
    with pytest.raises(ApiException) as err:
        _create(custom, namespace, "planboards", body)
    assert err.value.status == 422, err.value.body
    assert expected in json.loads(err.value.body)["message"]


def test_a_good_planboard_gets_its_defaults(
    custom: client.CustomObjectsApi, namespace: str
) -> None:
    body = planboard_body("good", backup={"schedule": "30 2 * * *", "storage": {"s3": S3}})
    created = _create(custom, namespace, "planboards", body)
    spec = created["spec"]
    assert spec["paused"] is False
    assert spec["image"]["pullPolicy"] == "IfNotPresent"
    assert spec["relay"]["replicas"] == 1
    assert spec["api"]["autoscaling"] == {
        "enabled": False,
        "minReplicas": 2,
        "maxReplicas": 10,
        "targetCPUUtilizationPercentage": 70,
    }
    assert spec["backup"]["retention"] == 7
    assert spec["backup"]["storage"]["s3"]["prefix"] == ""
    assert spec["mongodb"]["database"] == "planboard"
    # Unknown fields are pruned.
    body = planboard_body("pruned")
    body["spec"]["colour"] = "red"
    assert "colour" not in _create(custom, namespace, "planboards", body)["spec"]


def test_bad_backups_and_restores_are_rejected(
    custom: client.CustomObjectsApi, namespace: str
) -> None:
    def body(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
        return {
            "apiVersion": f"{PB_GROUP}/{PB_VERSION}",
            "kind": kind,
            "metadata": {"generateName": "x-"},
            "spec": spec,
        }

    ref = {"name": "demo"}
    for plural, kind, spec, expected in (
        ("planboardbackups", "PlanboardBackup", {}, "planboardRef: Required value"),
        (
            "planboardbackups",
            "PlanboardBackup",
            {"planboardRef": ref, "storage": {"pvc": {"claimName": "a"}, "s3": S3}},
            "exactly one of pvc or s3",
        ),
        (
            "planboardbackups",
            "PlanboardBackup",
            {"planboardRef": ref, "deadlineSeconds": 5},
            "spec.deadlineSeconds",
        ),
        (
            "planboardrestores",
            "PlanboardRestore",
            {"planboardRef": ref, "backupRef": {"name": "b"}, "archive": "a.tar.gz"},
            "exactly one of backupRef or archive",
        ),
        (
            "planboardrestores",
            "PlanboardRestore",
            {"planboardRef": ref},
            "exactly one of backupRef or archive",
        ),
    ):
        with pytest.raises(ApiException) as err:
            _create(custom, namespace, plural, body(kind, spec))
        assert err.value.status == 422, err.value.body
        assert expected in json.loads(err.value.body)["message"]
    # A backup is a record: its spec cannot change.
    created = _create(
        custom, namespace, "planboardbackups", body("PlanboardBackup", {"planboardRef": ref})
    )
    with pytest.raises(ApiException) as err:
        custom.patch_namespaced_custom_object(
            PB_GROUP,
            PB_VERSION,
            namespace,
            "planboardbackups",
            created["metadata"]["name"],
            {"spec": {"planboardRef": {"name": "other"}}},
        )
    assert "immutable" in err.value.body
