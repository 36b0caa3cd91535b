"""Reconcile PlanboardBackup and PlanboardRestore objects: queue, run a Job, finish.

Each object goes Queued -> Running (a Job of the service image) -> Complete or
Failed, always with a reason. Backups and restores of one Planboard never overlap:
an object starts only when no other one has a Job and none older is waiting (a
restore of an unfinished backup counts as just younger than it). A restore also
waits until the Planboard's Deployments are scaled to zero (the Planboard reconciler
does that for the restore next in line). Whatever happens to the Job, the object
ends: a failed Job fails it with the Job's reason, a Job that vanished fails it with
``JobVanished``, and an object not finished within its deadline (from its creation,
plus a grace period) fails with ``DeadlineExceeded``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from planboard_operator import builders, events, scheduling
from planboard_operator import conditions as cond
from planboard_operator import constants as c
from planboard_operator.kube import AlreadyExists
from planboard_operator.runtime import Runtime

Obj = dict[str, Any]
DEFAULT_DEADLINE_S = 3600
CACHE_WARM_DEADLINE_S = 600


async def reconcile_job_object(
    rt: Runtime,
    kind: str,
    namespace: str,
    name: str,
    logger: logging.Logger | logging.LoggerAdapter[Any],
) -> None:
    """One step of a backup or restore, serialized with everything of its Planboard."""
    obj = await asyncio.to_thread(rt.kube.get, c.API_VERSION, kind, namespace, name)
    if obj is None or scheduling.terminal(obj):
        return
    planboard = str(obj["spec"]["planboardRef"]["name"])
    async with rt.lock(f"{namespace}/{planboard}"):
        obj = await asyncio.to_thread(rt.kube.get, c.API_VERSION, kind, namespace, name)
        if obj is None or scheduling.terminal(obj):
            return
        started = time.monotonic()
        result = "error"
        try:
            result = await _step(rt, kind, obj)
        except Exception as exc:
            rt.metrics.errors.labels(kind, type(exc).__name__).inc()
            logger.exception("reconciling %s %s/%s failed", kind, namespace, name)
        finally:
            rt.metrics.reconciles.labels(kind, result).inc()
            rt.metrics.duration.labels(kind).observe(time.monotonic() - started)


class _Step:
    """Status changes of one object in one run, written once at the end."""

    def __init__(self, rt: Runtime, kind: str, obj: Obj) -> None:
        self.rt, self.kind, self.obj = rt, kind, obj
        self.now = rt.clock()
        self.status: Obj = dict(obj.get("status") or {})
        self.before = list(self.status.get("conditions") or [])
        self.conditions = self.before

    def set(self, type_: str, value: bool, reason: str, message: str) -> None:
        self.conditions = cond.set_condition(
            self.conditions,
            type_,
            value,
            reason,
            message,
            now=self.now,
            generation=self.obj["metadata"].get("generation"),
        )

    async def write(self, **fields: Any) -> None:
        new = {
            **fields,
            "conditions": self.conditions,
            "observedGeneration": self.obj["metadata"].get("generation"),
        }
        if all(self.status.get(k) == v for k, v in new.items()):
            return
        meta = self.obj["metadata"]
        await asyncio.to_thread(
            self.rt.kube.patch_status,
            c.API_VERSION,
            self.kind,
            meta["namespace"],
            meta["name"],
            new,
        )

    async def wait(self, reason: str, message: str) -> str:
        self.set(c.RUNNING, False, reason, message)
        if cond.transitioned(self.before, self.conditions, c.RUNNING) or (
            (cond.find(self.before, c.RUNNING) or {}).get("reason") != reason
        ):
            events.normal(self.obj, reason, message)
        await self.write()
        return "waiting"

    async def finish(
        self, ok: bool, reason: str, message: str, completed: str | None = None
    ) -> str:
        self.set(c.RUNNING, False, "Completed" if ok else "Failed", message)
        self.set(c.COMPLETE, ok, reason if ok else "Failed", message)
        self.set(c.FAILED, not ok, "Succeeded" if ok else reason, message)
        (events.normal if ok else events.warning)(self.obj, reason, message)
        self.rt.metrics.jobs.labels(self.kind, "complete" if ok else "failed").inc()
        completed_at = completed or cond.rfc3339(self.now)
        await self.write(completedAt=completed_at)
        if ok and self.kind == c.BACKUP:
            record_backup(self.rt, {**self.obj, "status": {"completedAt": completed_at}})
        return "complete" if ok else "failed"


def _deadline(obj: Mapping[str, Any], pb: Mapping[str, Any] | None) -> int:
    own = obj["spec"].get("deadlineSeconds")
    if own:
        return int(own)
    if pb is not None:
        return int((pb["spec"].get("backup") or {}).get("deadlineSeconds") or DEFAULT_DEADLINE_S)
    return DEFAULT_DEADLINE_S


async def _step(rt: Runtime, kind: str, obj: Obj) -> str:
    step = _Step(rt, kind, obj)
    meta = obj["metadata"]
    namespace = meta["namespace"]
    planboard = str(obj["spec"]["planboardRef"]["name"])
    pb = await asyncio.to_thread(rt.kube.get, c.API_VERSION, c.PLANBOARD, namespace, planboard)
    job_name = step.status.get("jobName")
    deadline = _deadline(obj, pb)
    created = scheduling.parse_time(meta["creationTimestamp"])
    assert created is not None
    limit = created + timedelta(seconds=deadline + rt.config.timing.deadline_grace_seconds)
    if step.now > limit and not step.status.get("restoredAt"):  # restored: only warming left
        if job_name:
            await asyncio.to_thread(rt.kube.delete, "batch/v1", "Job", namespace, job_name)
        return await step.finish(
            False,
            "DeadlineExceeded",
            f"not finished within {deadline}s of its creation (deadlineSeconds)",
        )
    if not job_name:
        if pb is None:
            return await step.finish(
                False, "PlanboardNotFound", f"Planboard {planboard} does not exist"
            )
        return await _start(rt, step, kind, obj, pb, deadline)
    job = await asyncio.to_thread(rt.kube.get, "batch/v1", "Job", namespace, job_name)
    if job is None:
        return await step.finish(
            False, "JobVanished", f"Job {job_name} disappeared before it finished"
        )
    job_conditions = (job.get("status") or {}).get("conditions") or []
    if cond.is_true(job_conditions, "Complete"):
        completed = (job.get("status") or {}).get("completionTime")
        if kind == c.RESTORE and obj["spec"].get("warmCache", True) and pb is not None:
            return await _warm_after_restore(rt, step, obj, pb, job_name, completed)
        return await step.finish(True, "Succeeded", f"Job {job_name} completed", completed)
    if cond.is_true(job_conditions, "Failed"):
        failure = cond.find(job_conditions, "Failed") or {}
        return await step.finish(
            False,
            str(failure.get("reason") or "JobFailed"),
            f"Job {job_name} failed: {failure.get('message') or 'see its pod logs'}",
        )
    step.set(c.RUNNING, True, "JobRunning", f"Job {job_name} is running")
    await step.write()
    return "running"


async def _start(rt: Runtime, step: _Step, kind: str, obj: Obj, pb: Obj, deadline: int) -> str:
    meta = obj["metadata"]
    namespace, planboard = meta["namespace"], pb["metadata"]["name"]
    backups = await asyncio.to_thread(rt.kube.list, c.API_VERSION, c.BACKUP, namespace, None)
    restores = await asyncio.to_thread(rt.kube.list, c.API_VERSION, c.RESTORE, namespace, None)
    peers = scheduling.for_planboard([*backups, *restores], planboard)
    blocking = scheduling.blocker(obj, peers)
    if blocking is not None:
        return await step.wait(
            "Queued", f"waiting for {blocking['kind']} {blocking['metadata']['name']}"
        )
    pb_storage = (pb["spec"].get("backup") or {}).get("storage")
    fields: Obj = {}
    if kind == c.BACKUP:
        storage = obj["spec"].get("storage") or pb_storage
        if not storage:
            return await step.finish(
                False, "NoStorage", "neither the backup nor its Planboard names backup.storage"
            )
        retention = (pb["spec"].get("backup") or {}).get("retention")
        job = builders.backup_job(
            pb,
            obj,
            storage,
            deadline_seconds=deadline,
            prune_keep=int(retention) if retention else None,
        )
        fields["archive"] = builders.archive_location(storage, planboard, meta["name"])
    else:
        resolved = await _restore_source(rt, step, obj, pb_storage)
        if isinstance(resolved, str):
            return resolved
        storage, archive = resolved
        deployments = await asyncio.to_thread(
            rt.kube.list, "apps/v1", "Deployment", namespace, builders.children_selector(planboard)
        )
        running = [
            d["metadata"]["name"]
            for d in deployments
            if int((d.get("status") or {}).get("replicas") or 0) > 0
            or int(d["spec"].get("replicas", 1)) > 0
        ]
        if running:
            return await step.wait(
                "WaitingForScaleDown",
                "waiting for the stack to scale to zero: " + ", ".join(sorted(running)),
            )
        job = builders.restore_job(
            pb,
            obj,
            storage,
            archive,
            drop=bool(obj["spec"].get("drop")),
            deadline_seconds=deadline,
        )
        fields["archive"] = archive
    # AlreadyExists: an earlier run created it but failed to record it; adopt it.
    with contextlib.suppress(AlreadyExists):
        await asyncio.to_thread(rt.kube.create, job)
    job_name = job["metadata"]["name"]
    step.set(c.RUNNING, True, "JobCreated", f"Job {job_name} created")
    events.normal(obj, "JobCreated", f"created Job {job_name}")
    await step.write(jobName=job_name, startedAt=cond.rfc3339(step.now), **fields)
    return "started"


async def _warm_after_restore(
    rt: Runtime, step: _Step, obj: Obj, pb: Obj, restore_job: str, completed: str | None
) -> str:
    """The restore Job is done: run ``planboard cache-warm --invalidate`` while the stack
    is still at zero, then complete. A warm that fails completes the restore all the
    same (the data is back; the cache fills as the API reads), with a Warning event."""
    namespace = obj["metadata"]["namespace"]
    restored_at = str(step.status.get("restoredAt") or completed or cond.rfc3339(step.now))
    warm_name = step.status.get("cacheWarmJob")
    if not warm_name:
        job = builders.cache_warm_job(pb, obj, deadline_seconds=CACHE_WARM_DEADLINE_S)
        with contextlib.suppress(AlreadyExists):
            await asyncio.to_thread(rt.kube.create, job)
        warm_name = job["metadata"]["name"]
        message = f"Job {restore_job} restored the data; Job {warm_name} warms the cache"
        step.set(c.RUNNING, True, "WarmingCache", message)
        events.normal(obj, "WarmingCache", f"created Job {warm_name}")
        await step.write(cacheWarmJob=warm_name, restoredAt=restored_at)
        return "running"
    warm = await asyncio.to_thread(rt.kube.get, "batch/v1", "Job", namespace, warm_name)
    warm_conditions = ((warm or {}).get("status") or {}).get("conditions") or []
    if warm is not None and cond.is_true(warm_conditions, "Complete"):
        return await step.finish(
            True,
            "Succeeded",
            f"Job {restore_job} completed; Job {warm_name} warmed the cache",
            restored_at,
        )
    if warm is None or cond.is_true(warm_conditions, "Failed"):
        failure = cond.find(warm_conditions, "Failed") or {}
        why = "it disappeared" if warm is None else str(failure.get("reason") or "JobFailed")
        events.warning(
            obj,
            "CacheWarmFailed",
            f"Job {warm_name} did not warm the cache ({why}); it fills as the API reads",
        )
        return await step.finish(
            True,
            "Succeeded",
            f"Job {restore_job} completed; warming the cache failed ({why})",
            restored_at,
        )
    step.set(c.RUNNING, True, "WarmingCache", f"Job {warm_name} warms the cache")
    await step.write()
    return "running"


async def _restore_source(
    rt: Runtime, step: _Step, obj: Obj, pb_storage: Mapping[str, Any] | None
) -> tuple[Mapping[str, Any], str] | str:
    """(storage, archive) of a restore, or the result of finishing/waiting on it."""
    spec = obj["spec"]
    namespace = obj["metadata"]["namespace"]
    if "backupRef" in spec:
        ref = spec["backupRef"]["name"]
        backup = await asyncio.to_thread(rt.kube.get, c.API_VERSION, c.BACKUP, namespace, ref)
        if backup is None:
            return await step.finish(
                False, "BackupNotFound", f"PlanboardBackup {ref} does not exist"
            )
        if scheduling.failed(backup):
            return await step.finish(False, "BackupFailed", f"PlanboardBackup {ref} failed")
        if not scheduling.succeeded(backup):
            return await step.wait("WaitingForBackup", f"PlanboardBackup {ref} has not completed")
        archive = str((backup.get("status") or {}).get("archive") or "")
        storage = spec.get("storage") or backup["spec"].get("storage") or pb_storage
    else:
        archive = str(spec["archive"])
        if not archive.startswith("s3://") and not archive.startswith("/"):
            archive = f"{c.BACKUP_MOUNT}/{archive}"
        storage = spec.get("storage") or pb_storage
    if not storage or not archive:
        return await step.finish(
            False, "NoStorage", "the archive's storage is unknown: set spec.storage"
        )
    return storage, archive


def record_backup(rt: Runtime, backup: Mapping[str, Any]) -> None:
    """Feed a successful PlanboardBackup's completion time to the last-backup gauge."""
    at = scheduling.parse_time(scheduling.completed_at(dict(backup)))
    if at is not None:
        rt.metrics.backup_succeeded(
            str(backup["metadata"]["namespace"]),
            str(backup["spec"]["planboardRef"]["name"]),
            at.timestamp(),
        )


async def load_backup_times(rt: Runtime) -> int:
    """At start: the last-backup gauge of every Planboard in scope from its newest
    completed PlanboardBackup, so a restart does not reset the backup-age alert.
    Returns the number of Planboards found with a successful backup."""
    scope = rt.config.scope
    namespaces: list[str | None] = [None] if scope.clusterwide else list(scope.namespaces)
    found: set[tuple[str, str]] = set()
    for namespace in namespaces:
        backups = await asyncio.to_thread(rt.kube.list, c.API_VERSION, c.BACKUP, namespace, None)
        for backup in backups:
            if scheduling.succeeded(backup):
                record_backup(rt, backup)
                found.add((backup["metadata"]["namespace"], backup["spec"]["planboardRef"]["name"]))
    return len(found)


def is_active(status: Mapping[str, Any] | None) -> bool:
    """For kopf filters: the object has not reached a terminal condition."""
    return not scheduling.terminal({"status": status or {}})
