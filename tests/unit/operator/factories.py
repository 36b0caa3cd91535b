"""Plain-dict Planboards, Deployments, backups and restores for the operator's unit tests."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

Obj = dict[str, Any]
T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def ts(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def planboard(
    *,
    groups: list[Obj] | None = None,
    status: Obj | None = None,
    generation: int = 1,
    **spec: Any,
) -> Obj:
    body: Obj = {
        "apiVersion": "planboard.dev/v1alpha1",
        "kind": "Planboard",
        "metadata": {
            "name": "demo",
            "namespace": "ns",
            "uid": "u-1",
            "generation": generation,
            "creationTimestamp": ts(T0),
        },
        "spec": {
            "image": {"repository": "registry.example/planboard", "tag": "0.1.0"},
            "secretKeyRef": {"name": "s", "key": "secret-key"},
            "mongodb": {"uriSecretRef": {"name": "s", "key": "mongodb-uri"}},
            "kafka": {"bootstrapServers": "kafka:9092", "topicPrefix": "pb."},
            "redis": {"urlSecretRef": {"name": "s", "key": "redis-url"}},
            "workers": {"groups": groups if groups is not None else [{"name": "mail"}]},
            **spec,
        },
    }
    if status is not None:
        body["status"] = copy.deepcopy(status)
    return body


def deployment(
    name: str,
    *,
    replicas: int = 1,
    ready: int | None = None,
    updated: int | None = None,
    current: int | None = None,
    generation: int = 1,
    observed: int | None = None,
) -> Obj:
    """A Deployment whose status is settled unless told otherwise."""
    ready = replicas if ready is None else ready
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "ns", "generation": generation},
        "spec": {"replicas": replicas},
        "status": {
            "replicas": replicas if current is None else current,
            "updatedReplicas": replicas if updated is None else updated,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": generation if observed is None else observed,
        },
    }


def stack(pb: Obj, **overrides: Obj) -> dict[str, Obj]:
    """Settled Deployments of every component, by name; ``overrides`` by part."""
    name = pb["metadata"]["name"]
    parts = ["api", "relay", *(f"worker-{g['name']}" for g in pb["spec"]["workers"]["groups"])]
    out = {}
    for part in parts:
        dep_name = f"{name}-{part}"
        out[dep_name] = overrides.get(part.replace("-", "_")) or deployment(dep_name)
    return out


def job_object(
    kind: str,
    name: str,
    *,
    created: datetime = T0,
    outcome: str | None = None,
    completed: datetime | None = None,
    job: bool = False,
    scheduled: bool = False,
    planboard: str = "demo",
    reason: str = "BackoffLimitExceeded",
) -> Obj:
    """A PlanboardBackup/PlanboardRestore; ``outcome`` "ok" or "failed" ends it."""
    status: Obj = {}
    if job:
        status["jobName"] = f"{name}-job"
    if outcome is not None:
        ok = outcome == "ok"
        status["conditions"] = [
            {"type": "Complete", "status": "True" if ok else "False", "reason": "Succeeded"},
            {
                "type": "Failed",
                "status": "False" if ok else "True",
                "reason": "Succeeded" if ok else reason,
                "message": "" if ok else "Job demo failed: boom",
            },
        ]
        status["completedAt"] = ts(completed or created)
    labels = {"planboard.dev/scheduled": "true"} if scheduled else {}
    return {
        "apiVersion": "planboard.dev/v1alpha1",
        "kind": kind,
        "metadata": {
            "name": name,
            "namespace": "ns",
            "creationTimestamp": ts(created),
            "labels": labels,
        },
        "spec": {"planboardRef": {"name": planboard}},
        "status": status,
    }


def backup(name: str, **kwargs: Any) -> Obj:
    return job_object("PlanboardBackup", name, **kwargs)


def restore(name: str, **kwargs: Any) -> Obj:
    return job_object("PlanboardRestore", name, **kwargs)
