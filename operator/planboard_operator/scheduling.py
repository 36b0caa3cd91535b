"""Backup schedules, retention and the order backups and restores run in (pure)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from croniter import croniter

from planboard_operator import conditions as cond
from planboard_operator import constants as c

Obj = Mapping[str, Any]
T = TypeVar("T", bound=Mapping[str, Any])


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def schedule_error(schedule: str) -> str | None:
    """Why a cron expression is unusable, or None."""
    if not croniter.is_valid(schedule):
        return f"{schedule!r} is not a valid cron expression"
    if len(schedule.split()) > 5:
        return f"{schedule!r}: use 5 fields (minute hour day month weekday)"
    return None


def due_tick(schedule: str, last: datetime, now: datetime) -> datetime | None:
    """The latest cron tick in (last, now], or None. Missed older ticks are skipped."""
    previous: datetime = croniter(schedule, now).get_prev(datetime)
    if previous.tzinfo is None:
        previous = previous.replace(tzinfo=UTC)
    # croniter's get_prev is strictly before ``now``; a tick exactly at now counts too.
    following: datetime = croniter(schedule, previous).get_next(datetime)
    if following.tzinfo is None:
        following = following.replace(tzinfo=UTC)
    tick = following if following <= now else previous
    return tick if tick > last else None


def scheduled_name(planboard: str, tick: datetime) -> str:
    return f"{planboard}-{tick.strftime('%Y%m%d%H%M')}"


def conditions_of(obj: Obj) -> list[Mapping[str, Any]]:
    return list((obj.get("status") or {}).get("conditions") or [])


def succeeded(obj: Obj) -> bool:
    return cond.is_true(conditions_of(obj), c.COMPLETE)


def failed(obj: Obj) -> bool:
    return cond.is_true(conditions_of(obj), c.FAILED)


def terminal(obj: Obj) -> bool:
    return succeeded(obj) or failed(obj)


def has_job(obj: Obj) -> bool:
    return bool((obj.get("status") or {}).get("jobName"))


def for_planboard(objs: Iterable[T], planboard: str) -> list[T]:
    return [o for o in objs if o.get("spec", {}).get("planboardRef", {}).get("name") == planboard]


def _age_key(obj: Obj) -> tuple[str, str, str]:
    meta = obj["metadata"]
    # Restores before backups created in the same second: a restore is what someone waits on.
    kind_rank = "0" if obj.get("kind") == c.RESTORE else "1"
    return (str(meta.get("creationTimestamp", "")), kind_rank, str(meta["name"]))


def queue(objs: Iterable[T]) -> list[T]:
    """Non-terminal backups and restores of one Planboard, oldest first."""
    return sorted((o for o in objs if not terminal(o)), key=_age_key)


def _source(obj: Obj, peers: Sequence[T]) -> T | None:
    """The unfinished backup among ``peers`` that the restore ``obj`` restores from."""
    if obj.get("kind") != c.RESTORE:
        return None
    ref = ((obj.get("spec") or {}).get("backupRef") or {}).get("name")
    return next(
        (
            p
            for p in peers
            if p.get("kind") == c.BACKUP and p["metadata"]["name"] == ref and not terminal(p)
        ),
        None,
    )


def _position(obj: Obj, peers: Sequence[Obj]) -> tuple[str, ...]:
    """Place in the queue: by age, but a restore of an unfinished backup comes right
    after that backup (it cannot run before it, and must not keep it from running)."""
    own = _age_key(obj)
    source = _source(obj, peers)
    return max(own, (*_age_key(source), *own)) if source is not None else own


def blocker(obj: Obj, peers: Sequence[T]) -> T | None:
    """What ``obj`` must wait for: a running Job, or an object ahead in the queue; else None."""
    waiting = queue(peers)
    name, kind = obj["metadata"]["name"], obj.get("kind")
    others = [p for p in waiting if (p["metadata"]["name"], p.get("kind")) != (name, kind)]
    running = [p for p in others if has_job(p)]
    if running:
        return running[0]
    mine = _position(obj, waiting)
    ahead = sorted(
        (p for p in others if _position(p, waiting) < mine), key=lambda p: _position(p, waiting)
    )
    return ahead[0] if ahead else None


def completed_at(obj: Obj) -> str:
    status = obj.get("status") or {}
    return str(status.get("completedAt") or obj["metadata"].get("creationTimestamp", ""))


def to_prune(backups: Iterable[T], retention: int) -> list[T]:
    """Backups past the retention count: successful beyond the newest N, failed likewise."""
    done = sorted((b for b in backups if succeeded(b)), key=completed_at, reverse=True)
    broken = sorted((b for b in backups if failed(b)), key=completed_at, reverse=True)
    return done[retention:] + broken[retention:]


def latest(objs: Iterable[T], predicate: Callable[[Obj], bool]) -> T | None:
    matching = [o for o in objs if predicate(o)]
    return max(matching, key=completed_at) if matching else None
