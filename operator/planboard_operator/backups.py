"""A Planboard's side of backups (pure): the schedule, retention, the restore that holds
the stack, and what the status says about backups.

Inputs are the Planboard and its PlanboardBackup/PlanboardRestore objects as listed,
plus the time; outputs are decisions the reconciler carries out (create, delete) and
the status fields and condition they lead to. ``scheduling`` has the cron and queue
rules shared with the backup/restore reconciler.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from planboard_operator import builders, scheduling
from planboard_operator import conditions as cond
from planboard_operator import constants as c
from planboard_operator.outcomes import Event, Problem

Obj = Mapping[str, Any]
T = TypeVar("T", bound=Mapping[str, Any])


def restore_hold(backups: Sequence[Obj], restores: Sequence[T]) -> T | None:
    """A restore that runs or is next in line: the stack stays scaled to zero for it."""
    peers: list[Obj] = [*backups, *restores]
    for restore in scheduling.queue(restores):
        if scheduling.has_job(restore) or scheduling.blocker(restore, peers) is None:
            return restore
    return None


@dataclass(frozen=True, slots=True)
class ScheduleDecision:
    """What the backup schedule asks for now."""

    #: The cron tick that is due (recorded as ``lastScheduleTime``); None: none is.
    tick: datetime | None = None
    #: The PlanboardBackup to create for it; None when the tick is skipped.
    create: Mapping[str, Any] | None = None
    #: ``BackupSkipped``: the previous scheduled backup has not finished.
    skipped: Event | None = None
    #: ``InvalidBackupSchedule``.
    problem: Problem | None = None

    @property
    def last_schedule_time(self) -> str | None:
        return cond.rfc3339(self.tick) if self.tick is not None else None

    @property
    def created_event(self) -> Event | None:
        if self.create is None:
            return None
        return Event(
            "BackupScheduled", f"created PlanboardBackup {self.create['metadata']['name']}"
        )


def schedule(pb: Mapping[str, Any], backups: Sequence[Obj], now: datetime) -> ScheduleDecision:
    """The newest cron tick in (lastScheduleTime or creation, now] creates a scheduled
    PlanboardBackup, unless an earlier scheduled one has not finished (skipped)."""
    meta = pb["metadata"]
    backup_spec = pb["spec"].get("backup") or {}
    expression = str(backup_spec.get("schedule") or "")
    if not expression or backup_spec.get("suspend"):
        return ScheduleDecision()
    error = scheduling.schedule_error(expression)
    if error is not None:
        return ScheduleDecision(problem=Problem("InvalidBackupSchedule", error))
    status = pb.get("status") or {}
    since = scheduling.parse_time(status.get("lastScheduleTime")) or scheduling.parse_time(
        meta["creationTimestamp"]
    )
    assert since is not None
    tick = scheduling.due_tick(expression, since, now)
    if tick is None:
        return ScheduleDecision()
    busy = [
        b
        for b in backups
        if not scheduling.terminal(b)
        and (b["metadata"].get("labels") or {}).get(c.SCHEDULED_LABEL) == "true"
    ]
    if busy:
        return ScheduleDecision(
            tick,
            skipped=Event(
                "BackupSkipped",
                f"the backup due at {cond.rfc3339(tick)} was skipped: "
                f"{busy[0]['metadata']['name']} has not finished",
                warning=True,
            ),
        )
    body = builders.scheduled_backup(
        pb, scheduling.scheduled_name(meta["name"], tick), cond.rfc3339(tick)
    )
    return ScheduleDecision(tick, create=body)


def retention(pb: Mapping[str, Any]) -> int | None:
    value = (pb["spec"].get("backup") or {}).get("retention")
    return int(value) if value else None


def to_prune(pb: Mapping[str, Any], backups: Sequence[T]) -> list[T]:
    """The Planboard's backups past its retention (none without one)."""
    keep = retention(pb)
    return scheduling.to_prune(backups, keep) if keep is not None else []


def pruned_event(pb: Mapping[str, Any], backup: str) -> Event:
    return Event("BackupPruned", f"deleted PlanboardBackup {backup} (retention {retention(pb)})")


@dataclass(frozen=True, slots=True)
class BackupSummary:
    """The backup part of a Planboard's status."""

    last_successful: str | None
    last_failed: str | None
    condition: cond.Update
    #: None: not changed by this run.
    last_schedule_time: str | None = None
    #: ``InvalidBackupSchedule``.
    problem: Problem | None = None

    def fields(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.last_schedule_time is not None:
            out["lastScheduleTime"] = self.last_schedule_time
        out["lastSuccessfulBackup"] = self.last_successful
        out["lastFailedBackup"] = self.last_failed
        return out


def summary(
    pb: Mapping[str, Any], backups: Sequence[Obj], scheduled: ScheduleDecision | None = None
) -> BackupSummary:
    """Newest successful and failed backup (kept from the status once pruned),
    ``BackupSucceeded`` from whichever of them finished last, and what the schedule did
    in this run (``scheduled``, after its backup was created and old ones pruned)."""
    status = pb.get("status") or {}
    ok = scheduling.latest(backups, scheduling.succeeded)
    bad = scheduling.latest(backups, scheduling.failed)
    last_ok = scheduling.completed_at(ok) if ok else status.get("lastSuccessfulBackup")
    last_bad = scheduling.completed_at(bad) if bad else status.get("lastFailedBackup")
    newest = max((b for b in (ok, bad) if b is not None), key=scheduling.completed_at, default=None)
    if newest is None:
        update = cond.Update(
            c.BACKUP_SUCCEEDED, cond.UNKNOWN, "NoBackupYet", "no backup has finished yet"
        )
    elif newest is ok:
        update = cond.Update(
            c.BACKUP_SUCCEEDED,
            True,
            "BackupCompleted",
            f"PlanboardBackup {newest['metadata']['name']} completed at "
            f"{scheduling.completed_at(newest)}",
        )
    else:
        failure = cond.find(scheduling.conditions_of(newest), c.FAILED) or {}
        update = cond.Update(
            c.BACKUP_SUCCEEDED,
            False,
            str(failure.get("reason") or "BackupFailed"),
            f"PlanboardBackup {newest['metadata']['name']} failed: {failure.get('message', '')}",
        )
    scheduled = scheduled or ScheduleDecision()
    return BackupSummary(last_ok, last_bad, update, scheduled.last_schedule_time, scheduled.problem)
