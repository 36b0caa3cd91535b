"""A Planboard's status from what a reconcile observed and decided (pure).

Component counts from the Deployments, and the conditions: ``Ready`` and
``Progressing`` from the rollouts, ``Degraded`` from the Problems met,
``BackupSucceeded`` from the backup summary, ``ReconciliationPaused`` from the pause.
Each condition keeps its ``lastTransitionTime`` unless its status changes, and carries
the generation it was computed for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from planboard_operator import builders, scaling
from planboard_operator import conditions as cond
from planboard_operator import constants as c
from planboard_operator.backups import BackupSummary
from planboard_operator.outcomes import Event, Problem

Obj = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Rollout:
    """Where one Deployment stands."""

    wanted: int
    replicas: int
    ready_replicas: int
    #: Every replica runs the current template (and the controller saw this generation).
    rolled_out: bool
    #: Rolled out, and all wanted replicas ready and available.
    ready: bool


def rollout(dep: Mapping[str, Any]) -> Rollout:
    want = int(dep["spec"].get("replicas", 1))
    st = dep.get("status") or {}
    current = int(st.get("replicas") or 0)
    updated = int(st.get("updatedReplicas") or 0)
    ready = int(st.get("readyReplicas") or 0)
    available = int(st.get("availableReplicas") or 0)
    observed = int(st.get("observedGeneration") or 0) >= int(dep["metadata"].get("generation", 0))
    rolled_out = observed and updated >= want and current == want
    return Rollout(
        want, current, ready, rolled_out, rolled_out and ready >= want and available >= want
    )


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """The status to merge-patch (None values remove a field) and the Events to post."""

    fields: Obj
    events: tuple[Event, ...] = ()


@dataclass(frozen=True, slots=True)
class Reconciled:
    """What one full (unpaused) reconcile of a Planboard did, for its status."""

    #: The Planboard's Deployments as applied, by name.
    deployments: Mapping[str, Obj]
    #: The restore holding the stack at zero, if any.
    hold: Mapping[str, Any] | None
    workers: scaling.WorkerPlan
    backups: BackupSummary

    @property
    def problems(self) -> list[Problem]:
        return [p for p in (self.workers.problem, self.backups.problem) if p is not None]


def _generation(pb: Mapping[str, Any]) -> int:
    return int(pb["metadata"]["generation"])


def _conditions_before(pb: Mapping[str, Any]) -> list[cond.Condition]:
    return list((pb.get("status") or {}).get("conditions") or [])


def pause_update(paused: tuple[str, str] | None) -> cond.Update:
    if paused is not None:
        return cond.Update(c.RECONCILIATION_PAUSED, True, *paused)
    return cond.Update(c.RECONCILIATION_PAUSED, False, "NotPaused", "changes are applied")


def pause_event(pb: Mapping[str, Any], paused: tuple[str, str] | None) -> Event | None:
    """``ReconciliationPaused`` when a pause starts, ``ReconciliationResumed`` when it ends."""
    before = cond.find(_conditions_before(pb), c.RECONCILIATION_PAUSED)
    if before is not None and before.get("status") == cond.status_of(paused is not None):
        return None
    if paused is not None:
        return Event("ReconciliationPaused", paused[1])
    if before is not None:
        return Event("ReconciliationResumed", "changes are applied again")
    return None


def components(
    pb: Mapping[str, Any],
    deployments: Mapping[str, Mapping[str, Any]],
    workers: scaling.WorkerPlan | None,
) -> Obj:
    """``api``, ``relay`` and ``workers`` of the status. Without a worker plan (paused)
    a group's lag stays as last read; a group gone from the spec loses its entry."""
    name = pb["metadata"]["name"]

    def counts(part: str) -> Obj:
        dep = deployments.get(builders.child_name(name, part))
        if dep is None:
            return {"replicas": 0, "readyReplicas": 0}
        state = rollout(dep)
        return {"replicas": state.replicas, "readyReplicas": state.ready_replicas}

    old = (pb.get("status") or {}).get("workers") or {}
    out: dict[str, Any] = {}
    for group in scaling.worker_groups(pb):
        entry = counts(builders.worker_part(group))
        planned = workers.groups.get(group) if workers is not None else None
        if planned is None:
            entry["lag"] = (old.get(group) or {}).get("lag")
        else:
            entry["lag"] = planned.lag
            entry["lastScaleTime"] = planned.last_scale_time
        out[group] = entry
    for gone in old:
        if gone not in out:
            out[gone] = None  # merge patch: remove the entry
    return {
        "api": {**counts(builders.API), "selector": builders.api_selector(name)},
        "relay": counts(builders.RELAY),
        "workers": out,
    }


def ready_update(
    pb: Mapping[str, Any],
    deployments: Mapping[str, Mapping[str, Any]],
    hold: Mapping[str, Any] | None,
) -> cond.Update:
    """Ready: every Deployment (all of them exist) rolled out with all replicas ready,
    and no restore holding the stack."""
    not_ready: list[str] = []
    summary: list[str] = []
    for dep_name in sorted(deployments):
        state = rollout(deployments[dep_name])
        summary.append(f"{dep_name} {state.ready_replicas}/{state.wanted}")
        if not state.ready:
            not_ready.append(dep_name)
    if len(deployments) < 2 + len(scaling.worker_groups(pb)):
        not_ready.append("(missing Deployments)")
    if hold is not None:
        return cond.Update(
            c.READY,
            False,
            "RestoreInProgress",
            f"stack scaled to zero for PlanboardRestore {hold['metadata']['name']}",
        )
    if not_ready:
        return cond.Update(
            c.READY,
            False,
            "ComponentsNotReady",
            "not ready: " + ", ".join(not_ready) + " (" + ", ".join(summary) + ")",
        )
    return cond.Update(c.READY, True, "AllComponentsReady", ", ".join(summary))


def progressing_update(
    deployments: Mapping[str, Mapping[str, Any]], hold: Mapping[str, Any] | None
) -> cond.Update:
    rolling = [n for n in sorted(deployments) if not rollout(deployments[n]).rolled_out]
    if hold is not None or rolling:
        what = ", ".join(rolling) or "scaling to zero"
        return cond.Update(c.PROGRESSING, True, "RollingOut", f"rolling out: {what}")
    return cond.Update(
        c.PROGRESSING, False, "RolloutComplete", "every Deployment runs the current template"
    )


def degraded_update(problems: Sequence[Problem]) -> cond.Update:
    if problems:
        return cond.Update(
            c.DEGRADED, True, problems[0].reason, "; ".join(p.message for p in problems)
        )
    return cond.Update(c.DEGRADED, False, "AsExpected", "reconciled without errors")


def paused(
    pb: Mapping[str, Any],
    deployments: Mapping[str, Mapping[str, Any]],
    reason: tuple[str, str],
    now: datetime,
) -> StatusUpdate:
    """The status of a paused Planboard: what exists, and the new generation unobserved."""
    updates = [
        pause_update(reason),
        cond.Update(
            c.PROGRESSING, False, "ReconciliationPaused", "changes are not applied while paused"
        ),
        ready_update(pb, deployments, None),
    ]
    fields = components(pb, deployments, None)
    fields["conditions"] = cond.apply(
        _conditions_before(pb), updates, now=now, generation=_generation(pb)
    )
    return StatusUpdate(fields)


def reconciled(pb: Mapping[str, Any], result: Reconciled, now: datetime) -> StatusUpdate:
    """The status after a full reconcile, and the Warning if it became Degraded."""
    before = _conditions_before(pb)
    problems = result.problems
    updates = [
        pause_update(None),
        result.backups.condition,
        degraded_update(problems),
        ready_update(pb, result.deployments, result.hold),
        progressing_update(result.deployments, result.hold),
    ]
    conditions = cond.apply(before, updates, now=now, generation=_generation(pb))
    posted: tuple[Event, ...] = ()
    if problems and cond.transitioned(before, conditions, c.DEGRADED):
        first = problems[0]
        posted = (Event(first.reason, first.message, warning=True),)
    fields = components(pb, result.deployments, result.workers)
    fields.update(result.backups.fields())
    fields["conditions"] = conditions
    fields["observedGeneration"] = _generation(pb)
    fields["configHash"] = builders.config_hash(pb)
    return StatusUpdate(fields, posted)


def failed(pb: Mapping[str, Any], exc: BaseException, now: datetime) -> StatusUpdate:
    """A reconcile that raised: Degraded with the error (the rest of the status kept)."""
    before = _conditions_before(pb)
    message = f"{type(exc).__name__}: {exc}"[:2000]
    update = cond.Update(c.DEGRADED, True, type(exc).__name__, message)
    conditions = cond.apply(before, [update], now=now, generation=_generation(pb))
    posted: tuple[Event, ...] = ()
    if cond.transitioned(before, conditions, c.DEGRADED):
        posted = (Event("ReconcileFailed", message, warning=True),)
    return StatusUpdate({"conditions": conditions}, posted)


def merge_patched(old: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """``old`` after a JSON merge patch (RFC 7386): None removes, objects merge."""
    out = dict(old)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, Mapping):
            base = out.get(key)
            out[key] = merge_patched(base if isinstance(base, Mapping) else {}, value)
        else:
            out[key] = value
    return out


def needs_write(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether merge-patching ``new`` onto the status ``old`` would change it."""
    return merge_patched(old, new) != old
