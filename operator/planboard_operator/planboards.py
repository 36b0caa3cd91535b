"""Reconcile a Planboard: read, let the pure modules decide, apply, write the status once.

Level-based: each run reads the Planboard and its children afresh, applies the
whole desired state (server-side apply, a no-op when nothing drifted), deletes
children that are no longer wanted, and writes the status. It runs on every
change and on a timer, so a deleted or hand-edited child is restored.

This module only does I/O and ordering. The decisions are pure functions with typed
results: ``desired`` (paused? the children, drift), ``scaling`` (replicas from lag:
a ``WorkerPlan``), ``backups`` (schedule, retention, the restore holding the stack: a
``BackupSummary``) and ``status`` (the status and conditions from a ``Reconciled``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from planboard_operator import backups, builders, desired, events, scaling, scheduling, status
from planboard_operator import constants as c
from planboard_operator.kube import AlreadyExists
from planboard_operator.lag import LagUnavailable
from planboard_operator.runtime import Runtime

Obj = dict[str, Any]


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
            failed = status.failed(pb, exc, rt.clock())
            events.post(pb, *failed.events)
            await _patch_status(rt, pb, failed.fields)
        finally:
            rt.metrics.reconciles.labels(c.PLANBOARD, result).inc()
            rt.metrics.duration.labels(c.PLANBOARD).observe(time.monotonic() - started)


async def _reconcile(rt: Runtime, pb: Obj) -> str:
    now = rt.clock()
    meta = pb["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    existing = await _children(rt, namespace, name)

    paused = desired.paused_reason(pb)
    events.post(pb, status.pause_event(pb, paused))
    if paused is not None:
        update = status.paused(pb, desired.deployments(existing), paused, now)
        await _write_status(rt, pb, update.fields)
        return "paused"

    backup_objs, restores = await _jobs_of(rt, namespace, name)
    hold = backups.restore_hold(backup_objs, restores)
    held = hold is not None

    workers = scaling.plan_workers(
        pb,
        desired.deployments(existing),
        await _read_lag(rt, pb),
        now=now,
        scale_down_after_s=rt.config.timing.scale_down_stabilization_seconds,
        held=held,
    )
    events.post(pb, *workers.events)
    rt.metrics.workers_observed(namespace, name, workers.observed)

    wanted = desired.children(
        pb, scaling.stack_replicas(pb, workers.replicas, held=held), held=held
    )
    events.post(pb, desired.config_changed(pb))
    applied = await _apply(
        rt, pb, existing, wanted, desired.self_changed(pb, existing, workers.changed, held=held)
    )

    backup_summary = await _backups(rt, pb, backup_objs, now)

    update = status.reconciled(
        pb, status.Reconciled(desired.deployments(applied), hold, workers, backup_summary), now
    )
    events.post(pb, *update.events)
    await _write_status(rt, pb, update.fields)
    return "ok"


async def _children(rt: Runtime, namespace: str, name: str) -> dict[desired.ChildKey, Obj]:
    """Everything carrying the Planboard's child labels, by (kind, name)."""
    selector = builders.children_selector(name)
    out: dict[desired.ChildKey, Obj] = {}
    for api_version, kind in builders.CHILD_KINDS:
        found = await asyncio.to_thread(rt.kube.list, api_version, kind, namespace, selector)
        for obj in found:
            out[(kind, obj["metadata"]["name"])] = obj
    return out


async def _jobs_of(rt: Runtime, namespace: str, name: str) -> tuple[list[Obj], list[Obj]]:
    backup_objs = await asyncio.to_thread(rt.kube.list, c.API_VERSION, c.BACKUP, namespace, None)
    restores = await asyncio.to_thread(rt.kube.list, c.API_VERSION, c.RESTORE, namespace, None)
    return scheduling.for_planboard(backup_objs, name), scheduling.for_planboard(restores, name)


async def _read_lag(rt: Runtime, pb: Obj) -> scaling.LagReading:
    ids = scaling.group_ids(pb)
    if not ids:
        return scaling.LagReading({})
    try:
        by_id = await rt.lag_source.lags(
            str(pb["spec"]["kafka"]["bootstrapServers"]), list(ids.values())
        )
    except LagUnavailable as exc:
        return scaling.LagReading(None, str(exc))
    return scaling.LagReading.from_group_ids(pb, by_id)


async def _apply(
    rt: Runtime,
    pb: Obj,
    existing: Mapping[desired.ChildKey, Obj],
    wanted: Iterable[Obj],
    intended: set[str],
) -> dict[desired.ChildKey, Obj]:
    """Server-side apply every wanted child, delete the unwanted ones; the applied."""
    steady = desired.steady(pb)
    applied: dict[desired.ChildKey, Obj] = {}
    for child in wanted:
        key = desired.key(child)
        applied[key] = new = await asyncio.to_thread(rt.kube.apply, child)
        events.post(
            pb,
            desired.applied_event(key, existing.get(key), new, steady=steady, intended=intended),
        )
    for api_version, kind, name in desired.unwanted(existing, applied):
        await asyncio.to_thread(
            rt.kube.delete, api_version, kind, pb["metadata"]["namespace"], name
        )
        events.post(pb, desired.deleted_event(kind, name))
    return applied


async def _backups(rt: Runtime, pb: Obj, found: list[Obj], now: datetime) -> backups.BackupSummary:
    """Create the scheduled backup that is due, prune past retention; the summary."""
    objs = list(found)
    decision = backups.schedule(pb, objs, now)
    events.post(pb, decision.skipped)
    if decision.create is not None:
        try:
            objs.append(await asyncio.to_thread(rt.kube.create, decision.create))
        except AlreadyExists:
            pass
        else:
            events.post(pb, decision.created_event)
    for old in backups.to_prune(pb, objs):
        old_name = old["metadata"]["name"]
        await asyncio.to_thread(
            rt.kube.delete, c.API_VERSION, c.BACKUP, pb["metadata"]["namespace"], old_name
        )
        objs.remove(old)
        events.post(pb, backups.pruned_event(pb, old_name))
    return backups.summary(pb, objs, decision)


async def _write_status(rt: Runtime, pb: Obj, fields: Mapping[str, Any]) -> None:
    if status.needs_write(pb.get("status") or {}, fields):
        await _patch_status(rt, pb, fields)


async def _patch_status(rt: Runtime, pb: Obj, fields: Mapping[str, Any]) -> None:
    meta = pb["metadata"]
    await asyncio.to_thread(
        rt.kube.patch_status, c.API_VERSION, c.PLANBOARD, meta["namespace"], meta["name"], fields
    )
