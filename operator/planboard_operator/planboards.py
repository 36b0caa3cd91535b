"""Reconcile a Planboard: its children, worker scaling, backup schedule and status.

Level-based: each run reads the Planboard and its children afresh, applies the
whole desired state (server-side apply, a no-op when nothing drifted), deletes
children that are no longer wanted, and writes the status. It runs on every
change and on a timer, so a deleted or hand-edited child is restored.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from planboard_operator import builders, events, scaling, scheduling
from planboard_operator import conditions as cond
from planboard_operator import constants as c
from planboard_operator.kube import AlreadyExists
from planboard_operator.lag import LagUnavailable
from planboard_operator.runtime import Runtime

Obj = dict[str, Any]


def paused_reason(pb: Mapping[str, Any]) -> tuple[str, str] | None:
    annotations = pb["metadata"].get("annotations") or {}
    if pb["spec"].get("paused"):
        return "PausedBySpec", "spec.paused is true: no changes are made to the children"
    if str(annotations.get(c.PAUSED_ANNOTATION, "")).lower() == "true":
        return (
            "PausedByAnnotation",
            f'annotation {c.PAUSED_ANNOTATION}="true": no changes are made to the children',
        )
    return None


async def reconcile_planboard(
    rt: Runtime, namespace: str, name: str, logger: logging.Logger | logging.LoggerAdapter[Any]
) -> None:
    """One reconciliation, serialized per Planboard; failures become the Degraded condition."""
    async with rt.lock(f"{namespace}/{name}"):
        pb = await asyncio.to_thread(rt.kube.get, c.API_VERSION, c.PLANBOARD, namespace, name)
        if pb is None or pb["metadata"].get("deletionTimestamp"):
            return
        started = time.monotonic()
        result = "error"
        try:
            result = await _reconcile(rt, pb)
            rt.reconciled += 1
        except Exception as exc:
            rt.metrics.errors.labels(c.PLANBOARD, type(exc).__name__).inc()
            logger.exception("reconciling Planboard %s/%s failed", namespace, name)
            await _record_error(rt, pb, exc)
        finally:
            rt.metrics.reconciles.labels(c.PLANBOARD, result).inc()
            rt.metrics.duration.labels(c.PLANBOARD).observe(time.monotonic() - started)


async def _record_error(rt: Runtime, pb: Obj, exc: Exception) -> None:
    status = pb.get("status") or {}
    before = list(status.get("conditions") or [])
    message = f"{type(exc).__name__}: {exc}"[:2000]
    after = cond.set_condition(
        before,
        c.DEGRADED,
        True,
        type(exc).__name__,
        message,
        now=rt.clock(),
        generation=pb["metadata"]["generation"],
    )
    if cond.transitioned(before, after, c.DEGRADED):
        events.warning(pb, "ReconcileFailed", message)
    meta = pb["metadata"]
    await asyncio.to_thread(
        rt.kube.patch_status,
        c.API_VERSION,
        c.PLANBOARD,
        meta["namespace"],
        meta["name"],
        {"conditions": after},
    )


def _generation_or_version(obj: Mapping[str, Any]) -> Any:
    meta = obj["metadata"]
    return meta.get("generation") or meta.get("resourceVersion")


def deployment_state(dep: Mapping[str, Any]) -> tuple[bool, bool, int, int]:
    """(rolled out, ready, replicas, ready replicas) of a Deployment."""
    want = int(dep["spec"].get("replicas", 1))
    st = dep.get("status") or {}
    current = int(st.get("replicas") or 0)
    updated = int(st.get("updatedReplicas") or 0)
    ready = int(st.get("readyReplicas") or 0)
    available = int(st.get("availableReplicas") or 0)
    observed = int(st.get("observedGeneration") or 0) >= int(dep["metadata"].get("generation", 0))
    rolled_out = observed and updated >= want and current == want
    return rolled_out, rolled_out and ready >= want and available >= want, current, ready


async def _list(
    rt: Runtime, api_version: str, kind: str, namespace: str, selector: str
) -> list[Obj]:
    return await asyncio.to_thread(rt.kube.list, api_version, kind, namespace, selector)


async def _jobs_of(rt: Runtime, namespace: str, name: str) -> tuple[list[Obj], list[Obj]]:
    backups = await asyncio.to_thread(rt.kube.list, c.API_VERSION, c.BACKUP, namespace, None)
    restores = await asyncio.to_thread(rt.kube.list, c.API_VERSION, c.RESTORE, namespace, None)
    return scheduling.for_planboard(backups, name), scheduling.for_planboard(restores, name)


def restore_holds(backups: Sequence[Obj], restores: Sequence[Obj]) -> Obj | None:
    """A restore that runs or is next in line: the stack stays scaled to zero for it."""
    peers = [*backups, *restores]
    for restore in scheduling.queue(restores):
        if scheduling.has_job(restore) or scheduling.blocker(restore, peers) is None:
            return restore
    return None


async def _reconcile(rt: Runtime, pb: Obj) -> str:
    now = rt.clock()
    meta, spec = pb["metadata"], pb["spec"]
    namespace, name, generation = meta["namespace"], meta["name"], meta["generation"]
    status = pb.get("status") or {}
    before = list(status.get("conditions") or [])
    conditions = before
    selector = builders.children_selector(name)
    existing: dict[tuple[str, str], Obj] = {}
    for api_version, kind in builders.CHILD_KINDS:
        for obj in await _list(rt, api_version, kind, namespace, selector):
            existing[(kind, obj["metadata"]["name"])] = obj

    def setc(type_: str, value: bool | str, reason: str, message: str) -> None:
        nonlocal conditions
        conditions = cond.set_condition(
            conditions, type_, value, reason, message, now=now, generation=generation
        )

    paused = paused_reason(pb)
    if paused is not None:
        setc(c.RECONCILIATION_PAUSED, True, *paused)
        setc(c.PROGRESSING, False, "ReconciliationPaused", "changes are not applied while paused")
        if cond.transitioned(before, conditions, c.RECONCILIATION_PAUSED):
            events.normal(pb, "ReconciliationPaused", paused[1])
        deployments = {n: o for (k, n), o in existing.items() if k == "Deployment"}
        new_status = _component_status(pb, deployments, status, {}, {}, now)
        conditions = _ready_condition(
            conditions, pb, deployments, None, now, generation, paused=True
        )
        new_status["conditions"] = conditions
        await _write_status(rt, pb, new_status)
        return "paused"

    setc(c.RECONCILIATION_PAUSED, False, "NotPaused", "changes are applied")
    if cond.find(before, c.RECONCILIATION_PAUSED) and cond.transitioned(
        before, conditions, c.RECONCILIATION_PAUSED
    ):
        events.normal(pb, "ReconciliationResumed", "changes are applied again")
    degraded: list[tuple[str, str]] = []
    backups, restores = await _jobs_of(rt, namespace, name)
    hold = restore_holds(backups, restores)

    # Worker replicas from consumer lag.
    groups = {g["name"]: g for g in (spec.get("workers") or {}).get("groups") or []}
    prefix = str(spec["kafka"].get("topicPrefix", "planboard."))
    lags: dict[str, int] | None = None
    if groups:
        try:
            by_id = await rt.lag_source.lags(
                str(spec["kafka"]["bootstrapServers"]), [prefix + g for g in groups]
            )
            lags = {g: by_id.get(prefix + g, 0) for g in groups}
        except LagUnavailable as exc:
            degraded.append(
                ("KafkaLagUnavailable", f"cannot read consumer lag ({exc}); worker replicas kept")
            )
    old_workers = status.get("workers") or {}
    worker_replicas: dict[str, int] = {}
    scaled_at: dict[str, str] = {}
    intended: set[str] = set()  # Deployments the operator itself changes in this run
    observed: dict[str, tuple[int | None, int]] = {}  # group -> (lag, replicas), for metrics
    for group_name, group in groups.items():
        dep = existing.get(
            ("Deployment", builders.child_name(name, builders.worker_part(group_name)))
        )
        current = int(dep["spec"].get("replicas", 1)) if dep is not None else None
        previous = old_workers.get(group_name) or {}
        lag = lags.get(group_name) if lags is not None else None
        decision = scaling.decide(
            group,
            current=current,
            lag=lag,
            last_scale=scheduling.parse_time(previous.get("lastScaleTime")),
            now=now,
            scale_down_after_s=rt.config.timing.scale_down_stabilization_seconds,
        )
        worker_replicas[group_name] = decision.replicas
        scaled_at[group_name] = (
            cond.rfc3339(now)
            if decision.changed
            else previous.get("lastScaleTime", cond.rfc3339(now))
        )
        observed[group_name] = (lag, decision.replicas)
        if decision.changed:
            intended.add(builders.child_name(name, builders.worker_part(group_name)))
        if decision.changed and current is not None and hold is None:
            events.normal(
                pb,
                "WorkersScaled",
                f"worker group {group_name}: {current} -> {decision.replicas} ({decision.reason})",
            )
    rt.metrics.workers_observed(namespace, name, observed)

    if hold is not None:
        replicas = builders.Replicas(api=0, relay=0, workers=dict.fromkeys(groups, 0))
    else:
        api = spec.get("api") or {}
        replicas = builders.Replicas(
            api=None if builders.autoscaling_enabled(pb) else int(api.get("replicas", 2)),
            relay=int((spec.get("relay") or {}).get("replicas", 1)),
            workers=worker_replicas,
        )
    desired = builders.desired_children(pb, replicas)
    if hold is not None:  # an HPA would scale the API back up during the restore
        desired = [d for d in desired if d["kind"] != "HorizontalPodAutoscaler"]

    digest = builders.config_hash(pb)
    if status.get("configHash") and status["configHash"] != digest:
        events.normal(pb, "ConfigChanged", f"configuration hash is now {digest[:19]}: rolling pods")
    steady = status.get("observedGeneration") == generation
    ready_before = cond.find(before, c.READY) or {}
    if hold is not None or ready_before.get("reason") == "RestoreInProgress":
        intended.update(n for (k, n) in existing if k == "Deployment")
    applied: dict[tuple[str, str], Obj] = {}
    for child in desired:
        key = (child["kind"], child["metadata"]["name"])
        old = existing.get(key)
        new = await asyncio.to_thread(rt.kube.apply, child)
        applied[key] = new
        what = f"{child['kind']} {child['metadata']['name']}"
        if old is None:
            reason = "DriftRepaired" if steady else "Created"
            verb = "recreated the deleted" if steady else "created"
            events.normal(pb, reason, f"{verb} {what}")
        elif (
            steady
            and key[1] not in intended
            and _generation_or_version(old) != _generation_or_version(new)
        ):
            events.normal(pb, "DriftRepaired", f"restored the edited {what}")
    for key, obj in existing.items():
        if key not in applied:
            kind, child_name = key
            api_version = obj.get("apiVersion") or dict(builders.CHILD_KINDS).get(kind, "v1")
            await asyncio.to_thread(rt.kube.delete, api_version, kind, namespace, child_name)
            events.normal(pb, "Deleted", f"deleted {kind} {child_name}, no longer wanted")

    backup_status = await _backups(rt, pb, backups, now, degraded)
    conditions = cond.set_condition(
        conditions,
        c.BACKUP_SUCCEEDED,
        backup_status.pop("_status"),
        backup_status.pop("_reason"),
        backup_status.pop("_message"),
        now=now,
        generation=generation,
    )
    if degraded:
        setc(c.DEGRADED, True, degraded[0][0], "; ".join(m for _, m in degraded))
    else:
        setc(c.DEGRADED, False, "AsExpected", "reconciled without errors")
    if cond.transitioned(before, conditions, c.DEGRADED) and degraded:
        events.warning(pb, degraded[0][0], degraded[0][1])

    deployments = {n: o for (k, n), o in applied.items() if k == "Deployment"}
    lag_by_group: dict[str, int | None] = {g: (lags or {}).get(g) for g in groups}
    new_status = _component_status(pb, deployments, status, lag_by_group, scaled_at, now)
    conditions = _ready_condition(conditions, pb, deployments, hold, now, generation)
    new_status.update(backup_status)
    new_status["conditions"] = conditions
    new_status["observedGeneration"] = generation
    new_status["configHash"] = digest
    await _write_status(rt, pb, new_status)
    return "ok"


def _component_status(
    pb: Obj,
    deployments: Mapping[str, Obj],
    status: Mapping[str, Any],
    lags: Mapping[str, int | None],
    scaled_at: Mapping[str, str],
    now: datetime,
) -> Obj:
    name = pb["metadata"]["name"]

    def counts(part: str) -> Obj:
        dep = deployments.get(builders.child_name(name, part))
        if dep is None:
            return {"replicas": 0, "readyReplicas": 0}
        _, _, current, ready = deployment_state(dep)
        return {"replicas": current, "readyReplicas": ready}

    workers: dict[str, Any] = {}
    groups = [g["name"] for g in (pb["spec"].get("workers") or {}).get("groups") or []]
    old = status.get("workers") or {}
    for group in groups:
        entry = counts(builders.worker_part(group))
        entry["lag"] = lags.get(group, (old.get(group) or {}).get("lag"))
        if group in scaled_at:
            entry["lastScaleTime"] = scaled_at[group]
        workers[group] = entry
    for gone in old:
        if gone not in workers:
            workers[gone] = None  # merge patch: remove the entry
    return {
        "api": {**counts(builders.API), "selector": builders.api_selector(name)},
        "relay": counts(builders.RELAY),
        "workers": workers,
    }


def _ready_condition(
    conditions: list[cond.Condition],
    pb: Obj,
    deployments: Mapping[str, Obj],
    hold: Obj | None,
    now: datetime,
    generation: int,
    *,
    paused: bool = False,
) -> list[cond.Condition]:
    not_ready: list[str] = []
    rolling: list[str] = []
    summary: list[str] = []
    for dep_name in sorted(deployments):
        dep = deployments[dep_name]
        rolled_out, ready, _, ready_count = deployment_state(dep)
        want = int(dep["spec"].get("replicas", 1))
        summary.append(f"{dep_name} {ready_count}/{want}")
        if not rolled_out:
            rolling.append(dep_name)
        if not ready:
            not_ready.append(dep_name)
    expected = 2 + len((pb["spec"].get("workers") or {}).get("groups") or [])
    if len(deployments) < expected:
        not_ready.append("(missing Deployments)")
    if hold is not None:
        status, reason = False, "RestoreInProgress"
        message = f"stack scaled to zero for PlanboardRestore {hold['metadata']['name']}"
    elif not_ready:
        status, reason = False, "ComponentsNotReady"
        message = "not ready: " + ", ".join(not_ready) + " (" + ", ".join(summary) + ")"
    else:
        status, reason, message = True, "AllComponentsReady", ", ".join(summary)
    out = cond.set_condition(
        conditions, c.READY, status, reason, message, now=now, generation=generation
    )
    if paused:
        return out  # Progressing says "ReconciliationPaused" while paused
    if hold is not None or rolling:
        what = ", ".join(rolling) or "scaling to zero"
        return cond.set_condition(
            out,
            c.PROGRESSING,
            True,
            "RollingOut",
            f"rolling out: {what}",
            now=now,
            generation=generation,
        )
    return cond.set_condition(
        out,
        c.PROGRESSING,
        False,
        "RolloutComplete",
        "every Deployment runs the current template",
        now=now,
        generation=generation,
    )


async def _backups(
    rt: Runtime, pb: Obj, backups: list[Obj], now: datetime, degraded: list[tuple[str, str]]
) -> Obj:
    """Create the scheduled backup that is due, prune past retention; backup status fields."""
    meta, spec = pb["metadata"], pb["spec"]
    status = pb.get("status") or {}
    backup_spec = spec.get("backup") or {}
    out: Obj = {}
    schedule = str(backup_spec.get("schedule") or "")
    if schedule and not backup_spec.get("suspend"):
        error = scheduling.schedule_error(schedule)
        if error is not None:
            degraded.append(("InvalidBackupSchedule", error))
        else:
            since = scheduling.parse_time(status.get("lastScheduleTime")) or scheduling.parse_time(
                meta["creationTimestamp"]
            )
            assert since is not None
            tick = scheduling.due_tick(schedule, since, now)
            if tick is not None:
                busy = [
                    b
                    for b in backups
                    if not scheduling.terminal(b)
                    and (b["metadata"].get("labels") or {}).get(c.SCHEDULED_LABEL) == "true"
                ]
                if busy:
                    events.warning(
                        pb,
                        "BackupSkipped",
                        f"the backup due at {cond.rfc3339(tick)} was skipped: "
                        f"{busy[0]['metadata']['name']} has not finished",
                    )
                else:
                    body = builders.scheduled_backup(
                        pb, scheduling.scheduled_name(meta["name"], tick), cond.rfc3339(tick)
                    )
                    try:
                        created = await asyncio.to_thread(rt.kube.create, body)
                        backups.append(created)
                        events.normal(
                            pb,
                            "BackupScheduled",
                            f"created PlanboardBackup {body['metadata']['name']}",
                        )
                    except AlreadyExists:
                        pass
                out["lastScheduleTime"] = cond.rfc3339(tick)
    retention = backup_spec.get("retention")
    if retention:
        for old in scheduling.to_prune(backups, int(retention)):
            old_name = old["metadata"]["name"]
            await asyncio.to_thread(
                rt.kube.delete, c.API_VERSION, c.BACKUP, meta["namespace"], old_name
            )
            backups.remove(old)
            events.normal(
                pb, "BackupPruned", f"deleted PlanboardBackup {old_name} (retention {retention})"
            )
    ok = scheduling.latest(backups, scheduling.succeeded)
    bad = scheduling.latest(backups, scheduling.failed)
    out["lastSuccessfulBackup"] = (
        scheduling.completed_at(ok) if ok else status.get("lastSuccessfulBackup")
    )
    out["lastFailedBackup"] = (
        scheduling.completed_at(bad) if bad else status.get("lastFailedBackup")
    )
    newest = max((b for b in (ok, bad) if b is not None), key=scheduling.completed_at, default=None)
    if newest is None:
        out.update(_status="Unknown", _reason="NoBackupYet", _message="no backup has finished yet")
    elif newest is ok:
        out.update(
            _status=True,
            _reason="BackupCompleted",
            _message=f"PlanboardBackup {newest['metadata']['name']} completed at "
            f"{scheduling.completed_at(newest)}",
        )
    else:
        failure = cond.find(scheduling.conditions_of(newest), c.FAILED) or {}
        out.update(
            _status=False,
            _reason=str(failure.get("reason") or "BackupFailed"),
            _message=f"PlanboardBackup {newest['metadata']['name']} failed: "
            f"{failure.get('message', '')}",
        )
    return out


async def _write_status(rt: Runtime, pb: Obj, new_status: Mapping[str, Any]) -> None:
    old = pb.get("status") or {}
    if all(old.get(k) == v for k, v in new_status.items() if v is not None) and not any(
        v is None and k in old for k, v in new_status.items()
    ):
        return
    meta = pb["metadata"]
    await asyncio.to_thread(
        rt.kube.patch_status,
        c.API_VERSION,
        c.PLANBOARD,
        meta["namespace"],
        meta["name"],
        new_status,
    )
