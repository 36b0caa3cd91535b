"""Scheduling over stored projects (issue 19): working calendars of workspaces and
projects, the stored tasks as the domain's ``ScheduleTask`` and the project's schedule
(domain/schedule.py; docs/scheduling.md, "The API")."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from planboard.domain.calendar import WorkingCalendar
from planboard.domain.errors import ValidationFailed
from planboard.domain.links import Dependency, Lag, LagUnit, LinkType
from planboard.domain.model import Complexity, TaskStatus
from planboard.domain.schedule import Schedule, ScheduleTask, SchedulingMode, schedule_project
from planboard.store import tasks, workspaces
from planboard.store.document import Document
from planboard.store.documents import CalendarDoc, ProjectDoc

MAX_HOLIDAYS = 1000
SCHEDULING_MODES = tuple(m.value for m in SchedulingMode)
DEFAULT_MODE = SchedulingMode.MANUAL.value
_ONE_MINUTE = 1 / 60


# --------------------------------------------------------------------------- calendars


def calendar_doc(values: Mapping[str, Any], field: str = "calendar") -> CalendarDoc:
    """A calendar as stored, checked by the domain's ``WorkingCalendar`` (a 422 naming
    ``calendar.<field>`` for each bad value). Missing fields take the defaults (Mon-Fri,
    8 hours, no holidays, UTC, the window from 09:00)."""
    day_start = values.get("day_start")
    try:
        calendar = WorkingCalendar(
            weekdays=frozenset(values.get("weekdays", [0, 1, 2, 3, 4])),
            hours_per_day=values.get("hours_per_day", 8.0),
            holidays=frozenset(date.fromisoformat(day) for day in values.get("holidays", [])),
            timezone=values.get("timezone", "UTC"),
            day_start=time.fromisoformat(day_start) if day_start is not None else None,
        )
    except ValidationFailed as error:
        raise ValidationFailed(
            [(f"{field}.{name}", message) for name, message in error.errors], str(error)
        ) from None
    doc: CalendarDoc = {
        "weekdays": sorted(calendar.weekdays),
        "hours_per_day": float(calendar.hours_per_day),
        "holidays": sorted(day.isoformat() for day in calendar.holidays),
        "timezone": calendar.timezone,
    }
    if calendar.day_start is not None:
        doc["day_start"] = calendar.day_start.strftime("%H:%M")
    return doc


def working_calendar(doc: Mapping[str, Any] | None) -> WorkingCalendar:
    """The domain calendar of a stored one (the default for none)."""
    if not doc:
        return WorkingCalendar()
    day_start = doc.get("day_start")
    return WorkingCalendar(
        weekdays=frozenset(doc.get("weekdays", [0, 1, 2, 3, 4])),
        hours_per_day=float(doc.get("hours_per_day", 8.0)),
        holidays=frozenset(date.fromisoformat(d) for d in doc.get("holidays", [])),
        timezone=str(doc.get("timezone", "UTC")),
        day_start=time.fromisoformat(day_start) if day_start else None,
    )


def calendar_out(calendar: WorkingCalendar) -> dict[str, Any]:
    return {
        "weekdays": sorted(calendar.weekdays),
        "hours_per_day": float(calendar.hours_per_day),
        "holidays": sorted(day.isoformat() for day in calendar.holidays),
        "timezone": calendar.timezone,
        "day_start": calendar.window_start.strftime("%H:%M"),
    }


@dataclass(frozen=True, slots=True)
class EffectiveCalendar:
    calendar: WorkingCalendar
    source: str  # project, workspace or default


async def effective_calendar(
    db: AsyncDatabase[Document], project: Mapping[str, Any]
) -> EffectiveCalendar:
    """The project's own calendar, else its workspace's, else the default."""
    if project.get("calendar"):
        return EffectiveCalendar(working_calendar(project["calendar"]), "project")
    workspace = await workspaces.get(db, str(project["workspace_id"]))
    stored = workspace.get("calendar") if workspace is not None else None
    if isinstance(stored, Mapping) and stored:
        return EffectiveCalendar(working_calendar(stored), "workspace")
    return EffectiveCalendar(WorkingCalendar(), "default")


# --------------------------------------------------------------------------- schedules


def day_start(calendar: WorkingCalendar, day: date) -> datetime:
    """The first working instant on or after ``day`` (local midnight) in the calendar."""
    midnight = datetime.combine(day, time(0), tzinfo=calendar.zone)
    return calendar.next_working_instant(midnight.astimezone(UTC))


def day_end(calendar: WorkingCalendar, day: date) -> datetime:
    """Where work stops at the end of ``day``: the end of the last working window on or
    before it (a due date means "finished by the end of that day")."""
    midnight = datetime.combine(day + timedelta(days=1), time(0), tzinfo=calendar.zone)
    back = calendar.add_working_hours(midnight.astimezone(UTC), -_ONE_MINUTE)
    return calendar.add_working_hours(back, _ONE_MINUTE)


def project_start(calendar: WorkingCalendar, project: Mapping[str, Any]) -> datetime:
    """The project's start: its ``start_date``, else the day it was created."""
    start = project.get("start_date")
    if isinstance(start, str):
        return day_start(calendar, date.fromisoformat(start))
    created = project.get("created_at")
    day = (
        created.astimezone(calendar.zone).date() if isinstance(created, datetime) else date.today()
    )
    return day_start(calendar, day)


def _day(value: object) -> date | None:
    return date.fromisoformat(value) if isinstance(value, str) else None


def schedule_task(
    doc: Mapping[str, Any], calendar: WorkingCalendar, mode: SchedulingMode
) -> ScheduleTask:
    """A stored task as the scheduler sees it: its estimate is its duration (none, or a
    milestone: 0); in automatic mode its ``start_date`` is a floor ("start no earlier
    than"), in manual mode its own dates pin it (the start, else the due date as its
    finish)."""
    links = doc.get("link_types") or {}
    predecessors = []
    for blocker in tasks.id_list(doc, "blocked_by"):
        link = links.get(blocker) or {}
        lag = Lag(float(link.get("lag", 0.0)), LagUnit(link.get("lag_unit", "h")))
        predecessors.append(Dependency(blocker, LinkType(link.get("type", "FS")), lag))
    estimate = doc.get("estimate_hours")
    duration = 0.0 if doc.get("milestone") or not estimate else float(estimate)
    start, due = _day(doc.get("start_date")), _day(doc.get("due_date"))
    floor = planned_start = planned_finish = None
    if mode is SchedulingMode.AUTOMATIC:
        floor = day_start(calendar, start) if start else None
    elif start is not None:
        planned_start = day_start(calendar, start)
    elif due is not None:
        planned_finish = day_end(calendar, due)
    complexity = doc.get("complexity")
    return ScheduleTask(
        id=str(doc["_id"]),
        duration_hours=duration,
        predecessors=tuple(predecessors),
        status=TaskStatus(str(doc["status"])),
        start_no_earlier_than=floor,
        planned_start=planned_start,
        planned_finish=planned_finish,
        complexity=Complexity(str(complexity)) if complexity else None,
        phase=str(doc["phase_id"]) if doc.get("phase_id") else None,
    )


def mode_of(project: Mapping[str, Any]) -> SchedulingMode:
    return SchedulingMode(str(project.get("scheduling_mode") or DEFAULT_MODE))


@dataclass(frozen=True, slots=True)
class ProjectSchedule:
    schedule: Schedule
    calendar: EffectiveCalendar
    docs: Sequence[Document]


def compute(
    project: Mapping[str, Any], docs: Sequence[Mapping[str, Any]], calendar: WorkingCalendar
) -> Schedule:
    mode = mode_of(project)
    return schedule_project(
        [schedule_task(doc, calendar, mode) for doc in docs],
        calendar=calendar,
        project_start=project_start(calendar, project),
        mode=mode,
    )


async def project_schedule(db: AsyncDatabase[Document], project: ProjectDoc) -> ProjectSchedule:
    """The project's schedule over its stored tasks, links and calendar."""
    calendar = await effective_calendar(db, project)
    docs = await tasks.schedule_of(db, project["_id"])
    return ProjectSchedule(compute(project, docs, calendar.calendar), calendar, docs)
