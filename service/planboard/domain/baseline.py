"""Baselines: a schedule frozen at one moment, and what has moved since.

A baseline keeps each task's planned (early) start and finish and the project's
finish. Comparing it with a later snapshot lists the tasks that slipped (finish later
than planned) or were pulled in (earlier), each by how much in working hours (on the
current calendar) and in calendar time, the tasks added and removed since, and how
far the project's finish moved.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from .calendar import WorkingCalendar
from .schedule import Schedule


@dataclass(frozen=True, slots=True)
class BaselineTask:
    """A task's planned dates when the baseline was taken."""

    id: str
    start: datetime
    finish: datetime


@dataclass(frozen=True, slots=True)
class Baseline:
    """Planned dates of a project's tasks (in schedule order) and its planned finish."""

    project_start: datetime
    project_finish: datetime
    tasks: tuple[BaselineTask, ...]


def freeze(schedule: Schedule) -> Baseline:
    """The schedule's early dates as a baseline."""
    return Baseline(
        project_start=schedule.project_start,
        project_finish=schedule.project_finish,
        tasks=tuple(
            BaselineTask(task.id, task.early_start, task.early_finish) for task in schedule.tasks
        ),
    )


@dataclass(frozen=True, slots=True)
class TaskChange:
    """How one task's dates moved: positive changes are later than the baseline."""

    id: str
    baseline_start: datetime
    baseline_finish: datetime
    current_start: datetime
    current_finish: datetime
    start_change_hours: float
    finish_change_hours: float
    finish_change: timedelta


@dataclass(frozen=True, slots=True)
class BaselineComparison:
    """Baseline against now.

    ``slipped`` (finish later, most first) and ``pulled_in`` (finish earlier, most
    first) hold the tasks in both snapshots whose finish moved; ``new_tasks`` are only
    in the current snapshot, ``removed_tasks`` only in the baseline.
    """

    slipped: tuple[TaskChange, ...]
    pulled_in: tuple[TaskChange, ...]
    unchanged: int
    new_tasks: tuple[str, ...]
    removed_tasks: tuple[str, ...]
    baseline_finish: datetime
    current_finish: datetime
    finish_change_hours: float
    finish_change: timedelta


def compare(
    baseline: Baseline, current: Baseline, *, calendar: WorkingCalendar
) -> BaselineComparison:
    """Compare a baseline with the current snapshot (see :func:`freeze`).

    Working-hour changes are measured on ``calendar`` (the project's current one).
    """
    planned = {task.id: task for task in baseline.tasks}
    now = {task.id: task for task in current.tasks}
    slipped: list[TaskChange] = []
    pulled_in: list[TaskChange] = []
    unchanged = 0
    for task_id, task in now.items():
        before = planned.get(task_id)
        if before is None:
            continue
        change = TaskChange(
            id=task_id,
            baseline_start=before.start,
            baseline_finish=before.finish,
            current_start=task.start,
            current_finish=task.finish,
            start_change_hours=calendar.working_hours_between(before.start, task.start),
            finish_change_hours=calendar.working_hours_between(before.finish, task.finish),
            finish_change=task.finish - before.finish,
        )
        if task.finish > before.finish:
            slipped.append(change)
        elif task.finish < before.finish:
            pulled_in.append(change)
        else:
            unchanged += 1
    slipped.sort(key=lambda c: (-c.finish_change, -c.finish_change_hours))
    pulled_in.sort(key=lambda c: (c.finish_change, c.finish_change_hours))
    return BaselineComparison(
        slipped=tuple(slipped),
        pulled_in=tuple(pulled_in),
        unchanged=unchanged,
        new_tasks=tuple(task_id for task_id in now if task_id not in planned),
        removed_tasks=tuple(task_id for task_id in planned if task_id not in now),
        baseline_finish=baseline.project_finish,
        current_finish=current.project_finish,
        finish_change_hours=calendar.working_hours_between(
            baseline.project_finish, current.project_finish
        ),
        finish_change=current.project_finish - baseline.project_finish,
    )
