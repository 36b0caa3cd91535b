"""Project progress roll-up (SPEC §7 ``GET /projects/{id}/progress``) from task nodes."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .dag import topological_order
from .model import TaskNode, TaskStatus


@dataclass(frozen=True, slots=True)
class PhaseProgress:
    """Completion of one phase (cancelled tasks excluded)."""

    name: str
    total: int
    completed: int
    percent: int

    def to_dict(self) -> dict[str, Any]:
        """The SPEC §7 phase entry."""
        return {
            "name": self.name,
            "total": self.total,
            "completed": self.completed,
            "percent": self.percent,
        }


@dataclass(frozen=True, slots=True)
class CriticalPath:
    """The heaviest chain of open tasks, first blocker to last dependent."""

    ids: tuple[str, ...]
    labels: tuple[str, ...]
    hours: float


@dataclass(frozen=True, slots=True)
class Progress:
    """Roll-up of a project's tasks.

    ``current_focus`` holds the ids of the in-progress tasks (input order); the API
    layer expands them into task summaries. ``critical_path_ids`` is the same chain
    as ``critical_path`` (labels) for callers that need to link the tasks.
    """

    total: int
    completed: int
    in_progress: int
    blocked: int
    percent: int
    remaining_estimate_hours: float
    critical_path: tuple[str, ...]
    critical_path_hours: float
    phases: tuple[PhaseProgress, ...]
    current_focus: tuple[str, ...]
    critical_path_ids: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Exactly the SPEC §7 progress answer (key order included)."""
        return {
            "total": self.total,
            "completed": self.completed,
            "in_progress": self.in_progress,
            "blocked": self.blocked,
            "percent": self.percent,
            "remaining_estimate_hours": self.remaining_estimate_hours,
            "critical_path": list(self.critical_path),
            "critical_path_hours": self.critical_path_hours,
            "phases": [phase.to_dict() for phase in self.phases],
            "current_focus": list(self.current_focus),
        }


def percent_of(part: int, whole: int) -> int:
    """Whole percent, rounded down; 0 for an empty whole."""
    return part * 100 // whole if whole else 0


def compute_progress(tasks: Sequence[TaskNode], phase_order: Sequence[str]) -> Progress:
    """Roll up ``tasks`` into a Progress; cancelled tasks count in neither total nor completed.

    Phases are reported in ``phase_order`` (empty ones with zeros); tasks whose
    ``phase`` is None or not listed belong to no phase entry. Raises CycleDetected
    if the open tasks' dependencies form a cycle.
    """
    counted = [task for task in tasks if task.status is not TaskStatus.CANCELLED]
    completed = _count(counted, TaskStatus.DONE)
    path = critical_path(tasks)
    return Progress(
        total=len(counted),
        completed=completed,
        in_progress=_count(counted, TaskStatus.IN_PROGRESS),
        blocked=_count(counted, TaskStatus.BLOCKED),
        percent=percent_of(completed, len(counted)),
        remaining_estimate_hours=math.fsum(_hours(t) for t in tasks if t.status.is_open),
        critical_path=path.labels,
        critical_path_hours=path.hours,
        phases=tuple(_phase_progress(counted, phase_order)),
        current_focus=tuple(t.id for t in tasks if t.status is TaskStatus.IN_PROGRESS),
        critical_path_ids=path.ids,
    )


def _count(tasks: Sequence[TaskNode], status: TaskStatus) -> int:
    return sum(1 for task in tasks if task.status is status)


def _hours(task: TaskNode) -> float:
    """A task's weight: its estimate, 0 when unknown."""
    return float(task.estimate_hours or 0.0)


def _phase_progress(counted: Sequence[TaskNode], phase_order: Sequence[str]) -> list[PhaseProgress]:
    """One entry per listed phase (duplicates in ``phase_order`` reported once)."""
    totals = dict.fromkeys(phase_order, 0)
    done = dict.fromkeys(phase_order, 0)
    for task in counted:
        if task.phase is not None and task.phase in totals:
            totals[task.phase] += 1
            done[task.phase] += task.status is TaskStatus.DONE
    return [
        PhaseProgress(name, totals[name], done[name], percent_of(done[name], totals[name]))
        for name in totals
    ]


def critical_path(tasks: Sequence[TaskNode]) -> CriticalPath:
    """Heaviest chain of open tasks by estimate (edges to closed or unknown tasks ignored).

    Ties go to the task that comes first in ``tasks``, both for the chain's last
    task and for each step back to its blocker, so the answer is deterministic.
    """
    open_tasks = {task.id: task for task in tasks if task.status.is_open}
    position = {task_id: index for index, task_id in enumerate(open_tasks)}
    edges = {
        task_id: tuple(b for b in dict.fromkeys(task.blocked_by) if b in open_tasks)
        for task_id, task in open_tasks.items()
    }
    weight: dict[str, float] = {}
    previous: dict[str, str | None] = {}
    for task_id in topological_order(edges):
        best = _heaviest(edges[task_id], weight, position)
        previous[task_id] = best
        base = weight[best] if best is not None else 0.0
        weight[task_id] = base + _hours(open_tasks[task_id])
    end = _heaviest(open_tasks, weight, position)
    ids = _walk_back(end, previous)
    return CriticalPath(
        ids=tuple(ids),
        labels=tuple(open_tasks[task_id].label for task_id in ids),
        hours=math.fsum(_hours(open_tasks[task_id]) for task_id in ids),
    )


def _heaviest(
    candidates: Sequence[str] | Mapping[str, object],
    weight: Mapping[str, float],
    position: Mapping[str, int],
) -> str | None:
    """The candidate with the largest weight, earliest position on ties; None if none."""
    best: str | None = None
    for candidate in candidates:
        if best is None or (weight[candidate], -position[candidate]) > (
            weight[best],
            -position[best],
        ):
            best = candidate
    return best


def _walk_back(end: str | None, previous: Mapping[str, str | None]) -> list[str]:
    """The chain ending at ``end`` listed first to last."""
    chain: list[str] = []
    node = end
    while node is not None:
        chain.append(node)
        node = previous[node]
    chain.reverse()
    return chain


PROGRESS_FULL = "▓"
PROGRESS_EMPTY = "░"


def progress_bar(percent: int, width: int = 10) -> str:
    """Text bar like ``▓▓▓▓░░░░░░`` (40%): cells round half up, but only 100% fills the bar."""
    if width <= 0:
        return ""
    percent = max(0, min(100, percent))
    filled = (percent * width + 50) // 100
    if percent < 100:
        filled = min(filled, width - 1)
    return PROGRESS_FULL * filled + PROGRESS_EMPTY * (width - filled)
