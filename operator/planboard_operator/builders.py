"""Every Kubernetes object the operator writes is built here, from a Planboard body.

Pure functions: a Planboard (and, for Jobs, a backup/restore object) in, plain dicts
out, ready for server-side apply. Names are ``<planboard>-<part>``; labels follow
``app.kubernetes.io/*`` (docs/design/planboard-crd.md).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from planboard_operator import constants as c

Obj = dict[str, Any]
Spec = Mapping[str, Any]

API, RELAY = "api", "relay"
CACHE_WARM = "cache-warm"
ARCHIVE_SUFFIX = ".tar.gz"


def child_name(planboard: str, part: str) -> str:
    return f"{planboard}-{part}"


def worker_part(group: str) -> str:
    return f"worker-{group}"


def selector_labels(instance: str, component: str) -> dict[str, str]:
    return {c.NAME_LABEL: c.APP_NAME, c.INSTANCE_LABEL: instance, c.COMPONENT_LABEL: component}


def labels(instance: str, component: str, image_tag: str | None = None) -> dict[str, str]:
    out = {
        **selector_labels(instance, component),
        c.MANAGED_BY_LABEL: c.MANAGED_BY,
        c.PART_OF_LABEL: c.APP_NAME,
    }
    if image_tag and re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?", image_tag):
        out[c.VERSION_LABEL] = image_tag
    return out


def children_selector(instance: str) -> str:
    """Label selector of everything the operator created for a Planboard."""
    return f"{c.INSTANCE_LABEL}={instance},{c.MANAGED_BY_LABEL}={c.MANAGED_BY}"


def api_selector(instance: str) -> str:
    """The /scale subresource's selector string of the API pods."""
    return ",".join(f"{k}={v}" for k, v in sorted(selector_labels(instance, API).items()))


def owner_reference(owner: Mapping[str, Any], *, controller: bool = True) -> Obj:
    meta = owner["metadata"]
    return {
        "apiVersion": owner.get("apiVersion", c.API_VERSION),
        "kind": owner.get("kind", c.PLANBOARD),
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": controller,
        "blockOwnerDeletion": True,
    }


def _meta(pb: Mapping[str, Any], part: str, component: str) -> Obj:
    name = pb["metadata"]["name"]
    return {
        "name": child_name(name, part),
        "namespace": pb["metadata"]["namespace"],
        "labels": labels(name, component, pb["spec"]["image"].get("tag")),
        "ownerReferences": [owner_reference(pb)],
    }


# -- configuration ----------------------------------------------------------------------


def config_data(pb: Mapping[str, Any]) -> dict[str, str]:
    """The ConfigMap of PLANBOARD_* variables: connection settings plus ``spec.config``."""
    spec = pb["spec"]
    mongodb, kafka = spec["mongodb"], spec["kafka"]
    config = spec.get("config") or {}
    data = {
        "PLANBOARD_ENV": "production",
        "PLANBOARD_HOST": "0.0.0.0",
        "PLANBOARD_PORT": str(c.HTTP_PORT),
        "PLANBOARD_MONGODB_DB": str(mongodb.get("database", "planboard")),
        "PLANBOARD_KAFKA_BOOTSTRAP": str(kafka["bootstrapServers"]),
        "PLANBOARD_KAFKA_TOPIC_PREFIX": str(kafka.get("topicPrefix", "planboard.")),
        "PLANBOARD_KAFKA_PARTITIONS": str(kafka.get("partitions", 6)),
        "PLANBOARD_KAFKA_REPLICATION_FACTOR": str(kafka.get("replicationFactor", 3)),
        "PLANBOARD_LOG_LEVEL": str(config.get("logLevel", "INFO")),
        "PLANBOARD_LOG_JSON": "true",
    }
    limits = config.get("rateLimits") or {}
    if "auth" in limits:
        data["PLANBOARD_RATE_LIMIT_AUTH"] = str(limits["auth"])
    if "api" in limits:
        data["PLANBOARD_RATE_LIMIT_API"] = str(limits["api"])
    if config.get("corsOrigins"):
        data["PLANBOARD_CORS_ORIGINS"] = ",".join(config["corsOrigins"])
    mail = config.get("mail") or {}
    for key, variable in (
        ("host", "PLANBOARD_SMTP_HOST"),
        ("port", "PLANBOARD_SMTP_PORT"),
        ("from", "PLANBOARD_MAIL_FROM"),
    ):
        if key in mail:
            data[variable] = str(mail[key])
    for feature, enabled in sorted((config.get("features") or {}).items()):
        data[f"PLANBOARD_FEATURE_{feature.upper()}"] = "true" if enabled else "false"
    for key, value in sorted((config.get("extra") or {}).items()):
        data[key] = str(value)
    return data


def config_env(pb: Mapping[str, Any]) -> list[Obj]:
    """``spec.config.env`` (OTEL_* and SENTRY_* variables) as container env entries, in
    order: a literal value, or a Secret key (``valueFrom.secretKeyRef``)."""
    out: list[Obj] = []
    for item in (pb["spec"].get("config") or {}).get("env") or []:
        if "valueFrom" in item:
            out.append(_secret_env(str(item["name"]), item["valueFrom"]["secretKeyRef"]))
        else:
            out.append({"name": str(item["name"]), "value": str(item.get("value", ""))})
    return out


def config_hash(pb: Mapping[str, Any]) -> str:
    """Hash of what the pods read at start: the ConfigMap data, ``spec.config.env`` and
    the secret refs."""
    spec = pb["spec"]
    material = {
        "data": config_data(pb),
        "env": config_env(pb),
        "secrets": [
            spec["secretKeyRef"],
            spec["mongodb"]["uriSecretRef"],
            spec["redis"]["urlSecretRef"],
        ],
    }
    digest = hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()
    return f"sha256:{digest}"


def config_map(pb: Mapping[str, Any]) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(pb, "config", "config"),
        "data": config_data(pb),
    }


def _secret_env(variable: str, ref: Mapping[str, Any]) -> Obj:
    return {
        "name": variable,
        "valueFrom": {"secretKeyRef": {"name": ref["name"], "key": ref["key"]}},
    }


def _env(pb: Mapping[str, Any]) -> list[Obj]:
    spec = pb["spec"]
    return [
        _secret_env("PLANBOARD_SECRET_KEY", spec["secretKeyRef"]),
        _secret_env("PLANBOARD_MONGODB_URI", spec["mongodb"]["uriSecretRef"]),
        _secret_env("PLANBOARD_REDIS_URL", spec["redis"]["urlSecretRef"]),
        *config_env(pb),
    ]


def _env_from(pb: Mapping[str, Any]) -> list[Obj]:
    return [{"configMapRef": {"name": child_name(pb["metadata"]["name"], "config")}}]


# -- workloads --------------------------------------------------------------------------

_POD_SECURITY = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
_CONTAINER_SECURITY = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}
_TMP_VOLUME = {"name": "tmp", "emptyDir": {}}
_TMP_MOUNT = {"name": "tmp", "mountPath": "/tmp"}  # noqa: S108 - an emptyDir, per pod


def image(pb: Mapping[str, Any]) -> str:
    spec = pb["spec"]["image"]
    return f"{spec['repository']}:{spec['tag']}"


def _container(pb: Mapping[str, Any], args: list[str], resources: Mapping[str, Any]) -> Obj:
    return {
        "name": "planboard",
        "image": image(pb),
        "imagePullPolicy": pb["spec"]["image"].get("pullPolicy", "IfNotPresent"),
        "command": ["planboard", *args],
        "env": _env(pb),
        "envFrom": _env_from(pb),
        "resources": dict(resources or {}),
        "securityContext": _CONTAINER_SECURITY,
        "volumeMounts": [_TMP_MOUNT],
    }


#: The pods' terminationGracePeriodSeconds unless the drain needs longer (below).
MIN_GRACE_SECONDS = 30
#: The API's own defaults for PLANBOARD_SHUTDOWN_DELAY_S and PLANBOARD_SHUTDOWN_TIMEOUT_S.
_SHUTDOWN_DEFAULTS = {"PLANBOARD_SHUTDOWN_DELAY_S": 3.0, "PLANBOARD_SHUTDOWN_TIMEOUT_S": 25.0}
#: Time past the drain for the rest of the exit (clients closed, telemetry flushed).
_GRACE_MARGIN_SECONDS = 2


def grace_seconds(pb: Mapping[str, Any]) -> int:
    """terminationGracePeriodSeconds: long enough for the drain that ``spec.config.extra``
    configures (shutdown delay + timeout + a margin), and never below 30 s. A value the
    API would refuse counts as its default (the pod will not start with it anyway)."""
    data = config_data(pb)
    drain = 0.0
    for name, default in _SHUTDOWN_DEFAULTS.items():
        try:
            value = float(data.get(name, default))
        except ValueError:
            value = default
        drain += value if 0 <= value <= 600 else default
    return max(MIN_GRACE_SECONDS, math.ceil(drain) + _GRACE_MARGIN_SECONDS)


#: The API's default PLANBOARD_DEPENDENCY_TIMEOUT_S: each /readyz check takes at most this.
_DEPENDENCY_TIMEOUT_DEFAULT = 2.0


def readiness_timeout_seconds(pb: Mapping[str, Any]) -> int:
    """The readinessProbe's timeoutSeconds: longer than the slowest /readyz answer, i.e.
    the dependency timeout ``spec.config.extra`` configures plus a second. The kubelet's
    default (1 s) is shorter than the API's default check timeout (2 s), so a dependency
    that does not answer at all (Kafka or Redis behind a dropped route), which /readyz
    only reports, would time the probe out and take the pod out of its Service anyway."""
    raw = config_data(pb).get("PLANBOARD_DEPENDENCY_TIMEOUT_S", str(_DEPENDENCY_TIMEOUT_DEFAULT))
    try:
        value = float(raw)
    except ValueError:
        value = _DEPENDENCY_TIMEOUT_DEFAULT
    if not 0 < value <= 600:  # refused by the API (the pod will not start with it anyway)
        value = _DEPENDENCY_TIMEOUT_DEFAULT
    return math.ceil(value) + 1


def _deployment(
    pb: Mapping[str, Any],
    part: str,
    container: Obj,
    *,
    replicas: int | None,
    config_digest: str,
) -> Obj:
    name = pb["metadata"]["name"]
    spec: Obj = {
        "selector": {"matchLabels": selector_labels(name, part)},
        "revisionHistoryLimit": 5,
        "template": {
            "metadata": {
                "labels": labels(name, part, pb["spec"]["image"].get("tag")),
                "annotations": {c.CONFIG_HASH_ANNOTATION: config_digest},
            },
            "spec": {
                "containers": [container],
                "securityContext": _POD_SECURITY,
                "terminationGracePeriodSeconds": grace_seconds(pb),
                "volumes": [_TMP_VOLUME],
            },
        },
    }
    if replicas is not None:  # None: an HPA owns the replica count
        spec["replicas"] = replicas
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(pb, part, part),
        "spec": spec,
    }


def api_deployment(pb: Mapping[str, Any], *, replicas: int | None, config_digest: str) -> Obj:
    api = pb["spec"].get("api") or {}
    container = _container(pb, ["serve"], api.get("resources") or {})
    container["ports"] = [{"name": "http", "containerPort": c.HTTP_PORT, "protocol": "TCP"}]
    container["livenessProbe"] = {
        "httpGet": {"path": "/healthz", "port": "http"},
        "periodSeconds": 10,
        "failureThreshold": 3,
    }
    # /readyz answers 503 only when MongoDB (PLANBOARD_READY_CHECKS) is down: the API
    # serves through a Kafka or Redis outage, so those never empty the Service.
    container["readinessProbe"] = {
        "httpGet": {"path": "/readyz", "port": "http"},
        "periodSeconds": 5,
        "timeoutSeconds": readiness_timeout_seconds(pb),
        "failureThreshold": 2,
    }
    deployment = _deployment(pb, API, container, replicas=replicas, config_digest=config_digest)
    deployment["spec"]["strategy"] = {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"},
    }
    return deployment


def relay_deployment(pb: Mapping[str, Any], *, replicas: int, config_digest: str) -> Obj:
    relay = pb["spec"].get("relay") or {}
    container = _container(pb, ["relay"], relay.get("resources") or {})
    return _deployment(pb, RELAY, container, replicas=replicas, config_digest=config_digest)


def worker_deployment(
    pb: Mapping[str, Any], group: str, *, replicas: int, config_digest: str
) -> Obj:
    workers = pb["spec"].get("workers") or {}
    container = _container(pb, ["worker", "--group", group], workers.get("resources") or {})
    part = worker_part(group)
    return _deployment(pb, part, container, replicas=replicas, config_digest=config_digest)


def api_service(pb: Mapping[str, Any]) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(pb, API, API),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(pb["metadata"]["name"], API),
            "ports": [
                {"name": "http", "port": c.HTTP_PORT, "targetPort": "http", "protocol": "TCP"}
            ],
        },
    }


def api_hpa(pb: Mapping[str, Any]) -> Obj:
    autoscaling = pb["spec"]["api"]["autoscaling"]
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _meta(pb, API, API),
        "spec": {
            "scaleTargetRef": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": child_name(pb["metadata"]["name"], API),
            },
            "minReplicas": autoscaling.get("minReplicas", 2),
            "maxReplicas": autoscaling.get("maxReplicas", 10),
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {
                            "type": "Utilization",
                            "averageUtilization": autoscaling.get(
                                "targetCPUUtilizationPercentage", 70
                            ),
                        },
                    },
                }
            ],
        },
    }


def api_pdb(pb: Mapping[str, Any]) -> Obj:
    budget = (pb["spec"].get("api") or {}).get("podDisruptionBudget") or {}
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(pb, API, API),
        "spec": {
            "minAvailable": budget.get("minAvailable", 1),
            "selector": {"matchLabels": selector_labels(pb["metadata"]["name"], API)},
        },
    }


@dataclass(frozen=True, slots=True)
class Replicas:
    """Replica counts decided by the reconciler (None for the API: the HPA decides)."""

    api: int | None
    relay: int
    workers: Mapping[str, int]


def autoscaling_enabled(pb: Mapping[str, Any]) -> bool:
    return bool(((pb["spec"].get("api") or {}).get("autoscaling") or {}).get("enabled"))


def pdb_enabled(pb: Mapping[str, Any]) -> bool:
    return bool(
        ((pb["spec"].get("api") or {}).get("podDisruptionBudget") or {}).get("enabled", True)
    )


def desired_children(pb: Mapping[str, Any], replicas: Replicas) -> list[Obj]:
    """Every child of the Planboard, in apply order (config before its readers)."""
    digest = config_hash(pb)
    out = [
        config_map(pb),
        api_deployment(pb, replicas=replicas.api, config_digest=digest),
        api_service(pb),
        relay_deployment(pb, replicas=replicas.relay, config_digest=digest),
    ]
    for group in sorted(replicas.workers):
        out.append(
            worker_deployment(pb, group, replicas=replicas.workers[group], config_digest=digest)
        )
    if autoscaling_enabled(pb):
        out.append(api_hpa(pb))
    if pdb_enabled(pb):
        out.append(api_pdb(pb))
    return out


#: The kinds the Planboard owns, for finding stale children: (apiVersion, kind).
CHILD_KINDS: tuple[tuple[str, str], ...] = (
    ("v1", "ConfigMap"),
    ("apps/v1", "Deployment"),
    ("v1", "Service"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("policy/v1", "PodDisruptionBudget"),
)


# -- backup and restore Jobs ------------------------------------------------------------


def job_name(kind: str, name: str) -> str:
    """The Job of a backup or restore object: ``<name>-backup|restore`` (≤ 63 chars)."""
    return _suffixed(name, "backup" if kind == c.BACKUP else "restore")


def cache_warm_job_name(restore: str) -> str:
    """The Job that warms the cache after a restore: ``<restore>-cache-warm`` (≤ 63 chars)."""
    return _suffixed(restore, CACHE_WARM)


def _suffixed(name: str, suffix: str) -> str:
    base = f"{name}-{suffix}"
    if len(base) <= 63:
        return base
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: 63 - len(suffix) - 10]}-{digest}-{suffix}"


def storage_target(storage: Mapping[str, Any], planboard: str) -> str:
    """Where a Planboard's archives go: a directory on the PVC or an S3 prefix."""
    if "s3" in storage:
        s3 = storage["s3"]
        return f"s3://{s3['bucket']}/{s3.get('prefix', '')}{planboard}/"
    return f"{c.BACKUP_MOUNT}/{planboard}"


def archive_location(storage: Mapping[str, Any], planboard: str, backup: str) -> str:
    target = storage_target(storage, planboard)
    return f"{target.rstrip('/')}/{backup}{ARCHIVE_SUFFIX}"


def _storage_pod_parts(storage: Mapping[str, Any]) -> tuple[list[Obj], list[Obj], list[Obj]]:
    """(env, volumes, mounts) that give a Job access to the storage."""
    if "s3" in storage:
        s3 = storage["s3"]
        secret = s3["credentialsSecretRef"]["name"]
        env = [
            _secret_env("AWS_ACCESS_KEY_ID", {"name": secret, "key": "AWS_ACCESS_KEY_ID"}),
            _secret_env("AWS_SECRET_ACCESS_KEY", {"name": secret, "key": "AWS_SECRET_ACCESS_KEY"}),
        ]
        if s3.get("endpoint"):
            env.append({"name": "AWS_ENDPOINT_URL", "value": s3["endpoint"]})
        if s3.get("region"):
            env.append({"name": "AWS_REGION", "value": s3["region"]})
        return env, [], []
    volume = {
        "name": "backups",
        "persistentVolumeClaim": {"claimName": storage["pvc"]["claimName"]},
    }
    return [], [volume], [{"name": "backups", "mountPath": c.BACKUP_MOUNT}]


def _job(
    pb: Mapping[str, Any],
    owner: Mapping[str, Any],
    component: str,
    name: str,
    args: list[str],
    storage: Mapping[str, Any] | None,
    deadline_seconds: int,
) -> Obj:
    instance = pb["metadata"]["name"]
    env, volumes, mounts = _storage_pod_parts(storage) if storage else ([], [], [])
    container = _container(pb, args, {})
    container["env"] = [*container["env"], *env]
    container["volumeMounts"] = [*container["volumeMounts"], *mounts]
    job_labels = {
        **labels(instance, component, pb["spec"]["image"].get("tag")),
        c.PLANBOARD_LABEL: instance,
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": owner["metadata"]["namespace"],
            "labels": job_labels,
            "ownerReferences": [owner_reference(owner)],
        },
        "spec": {
            "backoffLimit": 1,
            "activeDeadlineSeconds": deadline_seconds,
            "template": {
                "metadata": {"labels": job_labels},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [container],
                    "securityContext": _POD_SECURITY,
                    "volumes": [_TMP_VOLUME, *volumes],
                },
            },
        },
    }


def backup_job(
    pb: Mapping[str, Any],
    backup: Mapping[str, Any],
    storage: Mapping[str, Any],
    *,
    deadline_seconds: int,
    prune_keep: int | None,
) -> Obj:
    instance = pb["metadata"]["name"]
    args = [
        "backup",
        "--to",
        storage_target(storage, instance),
        "--name",
        backup["metadata"]["name"],
    ]
    if prune_keep is not None:
        args += ["--prune-keep", str(prune_keep)]
    name = job_name(c.BACKUP, backup["metadata"]["name"])
    return _job(pb, backup, "backup", name, args, storage, deadline_seconds)


def restore_job(
    pb: Mapping[str, Any],
    restore: Mapping[str, Any],
    storage: Mapping[str, Any],
    archive: str,
    *,
    drop: bool,
    deadline_seconds: int,
) -> Obj:
    args = ["restore", archive, *(["--drop"] if drop else [])]
    name = job_name(c.RESTORE, restore["metadata"]["name"])
    return _job(pb, restore, "restore", name, args, storage, deadline_seconds)


def cache_warm_job(
    pb: Mapping[str, Any], restore: Mapping[str, Any], *, deadline_seconds: int
) -> Obj:
    """After a restore: ``planboard cache-warm --invalidate`` (nothing cached before the
    restore is served; the hot reads are filled before the API is back)."""
    name = cache_warm_job_name(restore["metadata"]["name"])
    args = ["cache-warm", "--invalidate"]
    return _job(pb, restore, CACHE_WARM, name, args, None, deadline_seconds)


def scheduled_backup(pb: Mapping[str, Any], name: str, scheduled_at: str) -> Obj:
    """A PlanboardBackup the schedule creates (owned by the Planboard, not its controller)."""
    instance = pb["metadata"]["name"]
    return {
        "apiVersion": c.API_VERSION,
        "kind": c.BACKUP,
        "metadata": {
            "name": name,
            "namespace": pb["metadata"]["namespace"],
            "labels": {
                **labels(instance, "backup"),
                c.PLANBOARD_LABEL: instance,
                c.SCHEDULED_LABEL: "true",
            },
            "annotations": {c.SCHEDULED_AT_ANNOTATION: scheduled_at},
            "ownerReferences": [owner_reference(pb, controller=False)],
        },
        "spec": {"planboardRef": {"name": instance}},
    }
