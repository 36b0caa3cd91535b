"""What a Planboard wants and how applying it went (pure).

Whether it is paused, the children to apply (``builders`` makes each one), which
existing children are no longer wanted, and which Event an apply deserves:
``Created``, ``DriftRepaired`` (a deleted child recreated, a hand edit undone) or none.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from planboard_operator import builders
from planboard_operator import conditions as cond
from planboard_operator import constants as c
from planboard_operator.outcomes import Event

Obj = dict[str, Any]
#: A child by (kind, name): names are unique per kind within the namespace.
ChildKey = tuple[str, str]


def paused_reason(pb: Mapping[str, Any]) -> tuple[str, str] | None:
    """(reason, message) when the Planboard is paused by its spec or annotation."""
    annotations = pb["metadata"].get("annotations") or {}
    if pb["spec"].get("paused"):
        return "PausedBySpec", "spec.paused is true: no changes are made to the children"
    if str(annotations.get(c.PAUSED_ANNOTATION, "")).lower() == "true":
        return (
            "PausedByAnnotation",
            f'annotation {c.PAUSED_ANNOTATION}="true": no changes are made to the children',
        )
    return None


def key(obj: Mapping[str, Any]) -> ChildKey:
    return str(obj["kind"]), str(obj["metadata"]["name"])


def deployments(children: Mapping[ChildKey, Obj]) -> dict[str, Obj]:
    return {name: obj for (kind, name), obj in children.items() if kind == "Deployment"}


def children(pb: Mapping[str, Any], replicas: builders.Replicas, *, held: bool) -> list[Obj]:
    """Every child to apply, in order; no HPA while a restore holds the stack (it would
    scale the API back up)."""
    wanted = builders.desired_children(pb, replicas)
    if held:
        return [d for d in wanted if d["kind"] != "HorizontalPodAutoscaler"]
    return wanted


def config_changed(pb: Mapping[str, Any]) -> Event | None:
    """``ConfigChanged`` when the config hash differs from the one last reconciled."""
    old = (pb.get("status") or {}).get("configHash")
    digest = builders.config_hash(pb)
    if old and old != digest:
        return Event("ConfigChanged", f"configuration hash is now {digest[:19]}: rolling pods")
    return None


def self_changed(
    pb: Mapping[str, Any],
    existing: Mapping[ChildKey, Obj],
    rescaled: Iterable[str],
    *,
    held: bool,
) -> set[str]:
    """Deployments this run changes on purpose (their new generation is no drift): the
    rescaled workers, and every Deployment while a restore holds the stack or has just
    released it."""
    out = set(rescaled)
    before = (pb.get("status") or {}).get("conditions") or []
    if held or (cond.find(before, c.READY) or {}).get("reason") == "RestoreInProgress":
        out.update(deployments(existing))
    return out


def _generation_or_version(obj: Mapping[str, Any]) -> Any:
    meta = obj["metadata"]
    return meta.get("generation") or meta.get("resourceVersion")


def steady(pb: Mapping[str, Any]) -> bool:
    """The spec did not change since the last reconcile: any difference is drift."""
    return bool((pb.get("status") or {}).get("observedGeneration") == pb["metadata"]["generation"])


def applied_event(
    child: ChildKey,
    old: Mapping[str, Any] | None,
    new: Mapping[str, Any],
    *,
    steady: bool,
    intended: Iterable[str],
) -> Event | None:
    """The Event for one applied child, from the object before and after the apply.
    ``steady``: the spec did not change, so any difference is drift; ``intended``:
    Deployments this run changed on purpose."""
    kind, name = child
    what = f"{kind} {name}"
    if old is None:
        if steady:
            return Event("DriftRepaired", f"recreated the deleted {what}")
        return Event("Created", f"created {what}")
    if (
        steady
        and name not in set(intended)
        and _generation_or_version(old) != _generation_or_version(new)
    ):
        return Event("DriftRepaired", f"restored the edited {what}")
    return None


def unwanted(
    existing: Mapping[ChildKey, Obj], applied: Iterable[ChildKey]
) -> list[tuple[str, str, str]]:
    """(apiVersion, kind, name) of the existing children not applied this run."""
    keep = set(applied)
    kinds = dict(builders.CHILD_KINDS)
    out = []
    for child_key, obj in existing.items():
        if child_key not in keep:
            kind, name = child_key
            out.append((str(obj.get("apiVersion") or kinds.get(kind, "v1")), kind, name))
    return out


def deleted_event(kind: str, name: str) -> Event:
    return Event("Deleted", f"deleted {kind} {name}, no longer wanted")
