"""Critical path method over typed, lagged dependencies and a working calendar.

All arithmetic is in whole microseconds of *work* after the project start (positions
on the calendar's :class:`~.calendar.WorkTimeline`), so it is exact; dates are made
only at the end. With ``d`` a task's duration, ``ES``/``EF`` its early start/finish
and ``L`` a link's lag, a link from predecessor ``p`` to successor ``s`` requires:

====  =========================  ==============================
type  forward pass (early)       backward pass (late), on ``p``
====  =========================  ==============================
FS    ES(s) >= EF(p) + L         LF(p) <= LS(s) - L
SS    ES(s) >= ES(p) + L         LF(p) <= LS(s) - L + d(p)
FF    EF(s) >= EF(p) + L         LF(p) <= LF(s) - L
SF    EF(s) >= ES(p) + L         LF(p) <= LF(s) - L + d(p)
====  =========================  ==============================

Every task also starts no earlier than the project start (and its own "start no
earlier than", if any). The project finish is the latest early finish; each task's
late finish is at most that. Total slack is ``LF - EF``; free slack is how far a task
can slip without moving any successor or the project finish. See docs/scheduling.md.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import NamedTuple

from .calendar import WorkingCalendar, WorkTimeline, hours_to_micros, micros_to_hours
from .dag import topological_order
from .errors import ValidationFailed
from .links import Dependency, LinkType
from .model import Complexity, TaskStatus

_FS, _SS, _FF, _SF = LinkType.FS, LinkType.SS, LinkType.FF, LinkType.SF
MAX_DURATION_HOURS = 100_000.0


class SchedulingMode(StrEnum):
    """Automatic: dates follow the dependencies. Manual: tasks keep their own dates."""

    AUTOMATIC = "automatic"
    MANUAL = "manual"


@dataclass(frozen=True, slots=True)
class ScheduleTask:
    """What scheduling needs of a task.

    ``duration_hours`` is working time (0 makes a milestone). ``actual_start`` /
    ``actual_finish`` are facts and pin the task in every mode; ``planned_start`` /
    ``planned_finish`` are the task's own dates, which pin it only in manual mode. A
    pinned finish without a pinned start puts the start ``duration_hours`` earlier.
    ``complexity`` and ``phase`` are used by the forecast only.
    """

    id: str
    duration_hours: float = 0.0
    predecessors: tuple[Dependency, ...] = ()
    status: TaskStatus = TaskStatus.TODO
    start_no_earlier_than: datetime | None = None
    actual_start: datetime | None = None
    actual_finish: datetime | None = None
    planned_start: datetime | None = None
    planned_finish: datetime | None = None
    complexity: Complexity | None = None
    phase: str | None = None


class Link(NamedTuple):
    """A compiled link: task indexes and the lag in microseconds of work."""

    predecessor: int
    successor: int
    type: LinkType
    lag: int


@dataclass(frozen=True, slots=True)
class Network:
    """Tasks as parallel lists (by index) with their links, ready for the passes.

    Times are microseconds of work after the project start (``origin`` on
    ``timeline``); ``pin_start[i]`` is set when task ``i``'s dates are fixed, and
    then ``pin_finish[i]`` too.
    """

    ids: list[str]
    tasks: list[ScheduleTask]
    order: list[int]
    duration: list[int]
    lower: list[int]
    pin_start: list[int | None]
    pin_finish: list[int | None]
    closed: list[bool]
    preds: list[list[Link]]
    succs: list[list[Link]]
    timeline: WorkTimeline
    origin: int

    @property
    def project_start(self) -> datetime:
        """The project's first working instant (UTC)."""
        return self.timeline.start_instant(self.origin)

    def start_date(self, offset: int, duration: int) -> datetime:
        """The date of a start ``offset`` after the project start: where work resumes.

        A milestone (zero duration) is dated like a finish: it happens when its
        predecessor finishes, not when the next working window opens.
        """
        if duration == 0:
            return self.finish_date(offset)
        return self.timeline.start_instant(self.origin + offset)

    def finish_date(self, offset: int) -> datetime:
        """The date of a finish ``offset`` after the project start: where work stopped.

        Offset 0 is the project start itself, never the end of the window before it.
        """
        if offset == 0:
            return self.project_start
        return self.timeline.finish_instant(self.origin + offset)


@dataclass(frozen=True, slots=True)
class Passes:
    """Early/late dates, slack and criticality by task index (microseconds of work)."""

    es: list[int]
    ef: list[int]
    ls: list[int]
    lf: list[int]
    total_slack: list[int]
    free_slack: list[int]
    critical: list[bool]
    finish: int


@dataclass(frozen=True, slots=True)
class ScheduledTask:
    """One task's computed dates (UTC) and slack.

    The ``*_hours`` fields are the same four dates as working hours after the project
    start. Slack is in working hours; a closed task's late dates are its early dates.
    """

    id: str
    early_start: datetime
    early_finish: datetime
    late_start: datetime
    late_finish: datetime
    duration_hours: float
    total_slack_hours: float
    free_slack_hours: float
    critical: bool
    early_start_hours: float
    early_finish_hours: float
    late_start_hours: float
    late_finish_hours: float


@dataclass(frozen=True, slots=True)
class Violation:
    """A link the dates break: ``task`` is short of what ``predecessor`` requires by ``hours``."""

    task: str
    predecessor: str
    type: LinkType
    lag_hours: float
    shortfall_hours: float


@dataclass(frozen=True, slots=True)
class Schedule:
    """A project's schedule; ``tasks`` in input order (cancelled tasks left out)."""

    mode: SchedulingMode
    project_start: datetime
    project_finish: datetime
    duration_hours: float
    tasks: tuple[ScheduledTask, ...]
    critical_path: tuple[str, ...]
    violations: tuple[Violation, ...]

    def by_id(self) -> dict[str, ScheduledTask]:
        """The scheduled tasks keyed by id."""
        return {task.id: task for task in self.tasks}


def compile_network(
    tasks: Sequence[ScheduleTask],
    *,
    calendar: WorkingCalendar,
    project_start: datetime,
    mode: SchedulingMode = SchedulingMode.AUTOMATIC,
) -> Network:
    """Validate the tasks, order them (CycleDetected names a cycle) and pin their dates.

    Cancelled tasks and links to tasks not given are left out: they constrain nothing.
    Raises ValidationFailed for duplicate ids, bad durations and finish-before-start.
    """
    kept = [task for task in tasks if task.status is not TaskStatus.CANCELLED]
    ids = [task.id for task in kept]
    position = {task_id: i for i, task_id in enumerate(ids)}
    _check_tasks(kept, position)
    order = [
        position[task_id]
        for task_id in topological_order(
            {task.id: [dep.predecessor for dep in task.predecessors] for task in kept}
        )
    ]
    timeline = calendar.timeline()
    origin = timeline.position(project_start)
    hours_per_day = calendar.hours_per_day
    preds: list[list[Link]] = [[] for _ in kept]
    succs: list[list[Link]] = [[] for _ in kept]
    for successor, task in enumerate(kept):
        for dep in task.predecessors:
            predecessor = position.get(dep.predecessor)
            if predecessor is None:
                continue
            link = Link(
                predecessor, successor, dep.type, hours_to_micros(dep.lag.hours(hours_per_day))
            )
            preds[successor].append(link)
            succs[predecessor].append(link)
    duration = [hours_to_micros(task.duration_hours) for task in kept]
    lower = [0] * len(kept)
    pin_start: list[int | None] = [None] * len(kept)
    pin_finish: list[int | None] = [None] * len(kept)
    for i, task in enumerate(kept):
        start, finish = _pinned(task, mode)
        if start is not None or finish is not None:
            pinned_finish = timeline.position(finish) - origin if finish is not None else None
            pinned_start = timeline.position(start) - origin if start is not None else None
            if pinned_start is None:
                assert pinned_finish is not None
                pinned_start = pinned_finish - duration[i]
            pin_start[i] = pinned_start
            pin_finish[i] = (
                pinned_finish if pinned_finish is not None else pinned_start + duration[i]
            )
        elif task.start_no_earlier_than is not None:
            lower[i] = max(0, timeline.position(task.start_no_earlier_than) - origin)
    return Network(
        ids=ids,
        tasks=kept,
        order=order,
        duration=duration,
        lower=lower,
        pin_start=pin_start,
        pin_finish=pin_finish,
        closed=[task.status.is_closed for task in kept],
        preds=preds,
        succs=succs,
        timeline=timeline,
        origin=origin,
    )


def _check_tasks(tasks: Sequence[ScheduleTask], position: Mapping[str, int]) -> None:
    errors: list[tuple[str, str]] = []
    if len(position) != len(tasks):
        counts = Counter(task.id for task in tasks)
        dupes = sorted(task_id for task_id, count in counts.items() if count > 1)
        errors.append(("tasks", f"duplicate task ids: {', '.join(dupes)}"))
    for task in tasks:
        hours = task.duration_hours
        if isinstance(hours, bool) or not isinstance(hours, int | float):
            errors.append(("duration_hours", f"task {task.id}: must be a number of hours"))
        elif not math.isfinite(hours) or not 0 <= hours <= MAX_DURATION_HOURS:
            errors.append(
                (
                    "duration_hours",
                    f"task {task.id}: must be from 0 to {MAX_DURATION_HOURS:g}, not {hours}",
                )
            )
        for name, start, finish in (
            ("actual_finish", task.actual_start, task.actual_finish),
            ("planned_finish", task.planned_start, task.planned_finish),
        ):
            if start is not None and finish is not None and finish < start:
                errors.append((name, f"task {task.id}: finishes before it starts"))
    if errors:
        raise ValidationFailed(errors, "cannot schedule: " + errors[0][1])


def _pinned(task: ScheduleTask, mode: SchedulingMode) -> tuple[datetime | None, datetime | None]:
    """The dates that fix the task: actual ones, else (manual mode) its own."""
    if task.actual_start is not None or task.actual_finish is not None:
        return task.actual_start, task.actual_finish
    if mode is SchedulingMode.MANUAL:
        return task.planned_start, task.planned_finish
    return None, None


def run_passes(network: Network) -> Passes:
    """Forward and backward pass, slack and the critical flag (O(V + E))."""
    n = len(network.ids)
    duration, lower = network.duration, network.lower
    pin_start, pin_finish = network.pin_start, network.pin_finish
    es = [0] * n
    ef = [0] * n
    for i in network.order:
        pinned = pin_start[i]
        if pinned is not None:
            es[i] = pinned
            finish = pin_finish[i]
            assert finish is not None
            ef[i] = finish
            continue
        start = lower[i]
        d = duration[i]
        for link in network.preds[i]:
            p, kind = link.predecessor, link.type
            if kind is _FS:
                bound = ef[p] + link.lag
            elif kind is _SS:
                bound = es[p] + link.lag
            elif kind is _FF:
                bound = ef[p] + link.lag - d
            else:
                bound = es[p] + link.lag - d
            if bound > start:
                start = bound
        es[i] = start
        ef[i] = start + d
    finish = max(ef, default=0)
    ls = [0] * n
    lf = [0] * n
    closed = network.closed
    for i in reversed(network.order):
        d = ef[i] - es[i]
        if closed[i]:
            ls[i], lf[i] = es[i], ef[i]
            continue
        late = finish
        for link in network.succs[i]:
            s, kind = link.successor, link.type
            if kind is _FS:
                bound = ls[s] - link.lag
            elif kind is _SS:
                bound = ls[s] - link.lag + d
            elif kind is _FF:
                bound = lf[s] - link.lag
            else:
                bound = lf[s] - link.lag + d
            if bound < late:
                late = bound
        lf[i] = late
        ls[i] = late - d
    total = [lf[i] - ef[i] for i in range(n)]
    free = [0 if closed[i] else _free_slack(network, i, es, ef, finish) for i in range(n)]
    critical = [not closed[i] and total[i] <= 0 for i in range(n)]
    return Passes(es, ef, ls, lf, total, free, critical, finish)


def _free_slack(network: Network, i: int, es: list[int], ef: list[int], finish: int) -> int:
    slack = finish - ef[i]
    for link in network.succs[i]:
        slack = min(slack, link_slack(link, es, ef))
    return slack


def link_slack(link: Link, es: Sequence[int], ef: Sequence[int]) -> int:
    """How far the link's requirement is met (negative: broken by that much)."""
    p, s, lag = link.predecessor, link.successor, link.lag
    kind = link.type
    if kind is _FS:
        return es[s] - ef[p] - lag
    if kind is _SS:
        return es[s] - es[p] - lag
    if kind is _FF:
        return ef[s] - ef[p] - lag
    return ef[s] - es[p] - lag


def schedule_project(
    tasks: Sequence[ScheduleTask],
    *,
    calendar: WorkingCalendar,
    project_start: datetime,
    mode: SchedulingMode = SchedulingMode.AUTOMATIC,
) -> Schedule:
    """The project's schedule: CPM dates in automatic mode, the tasks' own in manual mode.

    Either way every link the dates break is reported in ``violations`` (in automatic
    mode only actual dates can break one). Raises CycleDetected naming a cycle.
    """
    network = compile_network(tasks, calendar=calendar, project_start=project_start, mode=mode)
    passes = run_passes(network)
    scheduled = tuple(_scheduled(network, passes, i) for i in range(len(network.ids)))
    rank = {task_index: rank for rank, task_index in enumerate(network.order)}
    critical = sorted(
        (i for i in range(len(network.ids)) if passes.critical[i]),
        key=lambda i: (passes.es[i], rank[i]),
    )
    return Schedule(
        mode=mode,
        project_start=network.project_start,
        project_finish=network.finish_date(passes.finish),
        duration_hours=micros_to_hours(passes.finish),
        tasks=scheduled,
        critical_path=tuple(network.ids[i] for i in critical),
        violations=tuple(_violations(network, passes)),
    )


def _scheduled(network: Network, passes: Passes, i: int) -> ScheduledTask:
    es, ef, ls, lf = passes.es[i], passes.ef[i], passes.ls[i], passes.lf[i]
    duration = ef - es
    task = network.tasks[i]
    early_start, early_finish = network.start_date(es, duration), network.finish_date(ef)
    if network.pin_start[i] is not None:
        early_start, early_finish = _pinned_dates(task, early_start, early_finish)
    return ScheduledTask(
        id=task.id,
        early_start=early_start,
        early_finish=early_finish,
        late_start=early_start if ls == es else network.start_date(ls, duration),
        late_finish=early_finish if lf == ef else network.finish_date(lf),
        duration_hours=micros_to_hours(duration),
        total_slack_hours=micros_to_hours(passes.total_slack[i]),
        free_slack_hours=micros_to_hours(passes.free_slack[i]),
        critical=passes.critical[i],
        early_start_hours=micros_to_hours(es),
        early_finish_hours=micros_to_hours(ef),
        late_start_hours=micros_to_hours(ls),
        late_finish_hours=micros_to_hours(lf),
    )


def _pinned_dates(
    task: ScheduleTask, start: datetime, finish: datetime
) -> tuple[datetime, datetime]:
    """A pinned task's dates as given (UTC) where given, else as computed."""
    if task.actual_start is not None or task.actual_finish is not None:
        given = task.actual_start, task.actual_finish
    else:
        given = task.planned_start, task.planned_finish
    return (
        given[0].astimezone(UTC) if given[0] is not None else start,
        given[1].astimezone(UTC) if given[1] is not None else finish,
    )


def _violations(network: Network, passes: Passes) -> list[Violation]:
    found: list[Violation] = []
    for i in network.order:
        for link in network.preds[i]:
            slack = link_slack(link, passes.es, passes.ef)
            if slack < 0:
                found.append(
                    Violation(
                        task=network.ids[link.successor],
                        predecessor=network.ids[link.predecessor],
                        type=link.type,
                        lag_hours=micros_to_hours(link.lag),
                        shortfall_hours=micros_to_hours(-slack),
                    )
                )
    return found
