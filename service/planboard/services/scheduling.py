"""Scheduling over stored projects (issue 19): working calendars of workspaces and
projects, the stored tasks as the domain's ``ScheduleTask`` and the project's schedule
(domain/schedule.py; docs/scheduling.md, "The API")."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from planboard.domain.baseline import Baseline, BaselineTask, TaskChange, compare, freeze
from planboard.domain.calendar import WorkingCalendar, WorkTimeOutOfRange
from planboard.domain.errors import Conflict, NotFound, ValidationFailed
from planboard.domain.forecast import (
    MIN_HISTORY_SAMPLES,
    DurationModel,
    FinishPercentiles,
    HistorySample,
    StatusChange,
    WorkSpan,
    calibrate,
    default_models,
    forecast_project,
    work_spans,
)
from planboard.domain.links import Dependency, Lag, LagUnit, LinkType
from planboard.domain.model import Complexity, TaskStatus
from planboard.domain.schedule import (
    Schedule,
    ScheduledTask,
    ScheduleTask,
    SchedulingMode,
    Violation,
    schedule_project,
)
from planboard.services.activity import Actor, entry, event, record_change
from planboard.services.context import ServiceContext
from planboard.store import activity, baselines, projects, quotas, tasks, workspaces
from planboard.store.document import Document
from planboard.store.documents import CalendarDoc, ProjectDoc
from planboard.store.ids import new_id, utcnow

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
    doc: Mapping[str, Any],
    calendar: WorkingCalendar,
    mode: SchedulingMode,
    actual: WorkSpan | None = None,
) -> ScheduleTask:
    """A stored task as the scheduler sees it: its estimate is its duration (none, or a
    milestone: 0); in automatic mode its ``start_date`` is a floor ("start no earlier
    than"), in manual mode its own dates pin it (the start, else the due date as its
    finish). A done task's ``actual`` span (its last in_progress → done, from the
    activity log) pins it in every mode; without a recorded start its finish does."""
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
    done = doc.get("status") == TaskStatus.DONE.value and actual is not None
    return ScheduleTask(
        id=str(doc["_id"]),
        duration_hours=duration,
        predecessors=tuple(predecessors),
        status=TaskStatus(str(doc["status"])),
        start_no_earlier_than=floor,
        planned_start=planned_start,
        planned_finish=planned_finish,
        actual_start=actual.started if done and actual is not None else None,
        actual_finish=actual.finished if done and actual is not None else None,
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
    project: Mapping[str, Any],
    docs: Sequence[Mapping[str, Any]],
    calendar: WorkingCalendar,
    actuals: Mapping[str, WorkSpan] | None = None,
) -> Schedule:
    """The schedule of the tasks; ``actuals`` (by task id) pin the done ones."""
    mode = mode_of(project)
    spans = actuals or {}
    return schedule_project(
        [schedule_task(doc, calendar, mode, spans.get(str(doc["_id"]))) for doc in docs],
        calendar=calendar,
        project_start=project_start(calendar, project),
        mode=mode,
    )


async def project_schedule(db: AsyncDatabase[Document], project: ProjectDoc) -> ProjectSchedule:
    """The project's schedule over its stored tasks, links and calendar, its done tasks
    at their actual dates."""
    calendar = await effective_calendar(db, project)
    docs = await tasks.schedule_of(db, project["_id"])
    actuals = await status_spans(db, "project_id", project["_id"])
    # CPU-bound (about 0.25 s at 10,000 tasks): off the event loop
    schedule = await asyncio.to_thread(compute, project, docs, calendar.calendar, actuals)
    return ProjectSchedule(schedule, calendar, docs)


async def computed_schedule(db: AsyncDatabase[Document], project: ProjectDoc) -> ProjectSchedule:
    """``project_schedule`` for the API: a schedule that cannot be computed (its dates
    leave the calendar's range) is a 409."""
    try:
        return await project_schedule(db, project)
    except WorkTimeOutOfRange as error:
        raise Conflict(f"the schedule cannot be computed: {error}") from None


async def project_schedule_out(db: AsyncDatabase[Document], project: ProjectDoc) -> dict[str, Any]:
    """``GET /projects/{id}/schedule``: the schedule with each task's key and ref."""
    found = await computed_schedule(db, project)
    return schedule_out(project, found)


async def task_schedule_out(
    db: AsyncDatabase[Document], project: ProjectDoc, task_id: str
) -> dict[str, Any]:
    """``GET /tasks/{task}/schedule``: the task's line of its project's schedule (the
    same computation as ``GET /projects/{id}/schedule``, never stored: slack depends on
    the whole project and its calendar), with the project's finish and the violations of
    the task's own links."""
    found = await computed_schedule(db, project)
    schedule, lines = found.schedule, _Lines(found)
    [mine] = [task for task in schedule.tasks if task.id == task_id]
    return {
        **lines.task(mine),
        "project_id": project["_id"],
        "mode": schedule.mode.value,
        "project_finish": schedule.project_finish,
        "on_critical_path": task_id in schedule.critical_path,
        "violations": [lines.violation(v) for v in schedule.violations if v.task == task_id],
    }


# --------------------------------------------------------------------------- history

_STATUSES = frozenset(status.value for status in TaskStatus)


def status_history(rows: Sequence[tuple[str, Any, Any]]) -> list[StatusChange]:
    """Stored status changes ``(task_id, status, at)`` as the domain's (unknown statuses
    and missing times left out; stored times are UTC)."""
    changes = []
    for task_id, status, at in rows:
        if isinstance(at, datetime) and status in _STATUSES:
            changes.append(StatusChange(task_id, _as_utc(at), TaskStatus(status)))
    return changes


async def status_spans(
    db: AsyncDatabase[Document], scope: str, scope_id: str
) -> dict[str, WorkSpan]:
    """Each task's last in_progress → done in the newest status changes of a project or
    workspace (``scope``: ``project_id`` or ``workspace_id``)."""
    rows = await activity.status_changes(db, scope, scope_id)
    return work_spans(status_history(rows))


def history_samples(
    spans: Mapping[str, WorkSpan], docs: Mapping[str, Mapping[str, Any]], calendar: WorkingCalendar
) -> list[HistorySample]:
    """What the done tasks took: the working hours (on ``calendar``) of each span with a
    start, against the task's estimate. Tasks not done now, without an estimate,
    milestones and spans of no working time are left out."""
    samples = []
    for task_id, span in spans.items():
        doc = docs.get(task_id)
        if doc is None or span.started is None or doc.get("status") != TaskStatus.DONE.value:
            continue
        estimate = doc.get("estimate_hours")
        if (
            doc.get("milestone")
            or isinstance(estimate, bool)
            or not isinstance(estimate, int | float)
        ):
            continue
        try:
            actual = calendar.working_hours_between(span.started, span.finished)
        except WorkTimeOutOfRange:
            continue
        if estimate > 0 and actual > 0:
            complexity = doc.get("complexity")
            samples.append(
                HistorySample(
                    float(estimate), actual, Complexity(str(complexity)) if complexity else None
                )
            )
    return samples


@dataclass(frozen=True, slots=True)
class Calibration:
    """The forecast's duration models; ``source`` is where their history came from
    (project, workspace, or default: too little history), ``samples`` how many done
    tasks that history held."""

    models: Mapping[Complexity | None, DurationModel]
    source: str
    samples: int

    @property
    def calibrated(self) -> bool:
        return self.source != "default"


async def calibration(
    db: AsyncDatabase[Document],
    project: Mapping[str, Any],
    docs: Sequence[Mapping[str, Any]],
    spans: Mapping[str, WorkSpan],
    calendar: WorkingCalendar,
) -> Calibration:
    """Models calibrated from the project's done tasks, else (fewer than
    MIN_HISTORY_SAMPLES) from the workspace's, else the defaults."""
    by_id = {str(d["_id"]): d for d in docs}
    samples = history_samples(spans, by_id, calendar)
    if len(samples) >= MIN_HISTORY_SAMPLES:
        return Calibration(calibrate(samples), "project", len(samples))
    wide = await status_spans(db, "workspace_id", str(project["workspace_id"]))
    others = [task_id for task_id in wide if task_id not in by_id]
    found = await tasks.many(
        db, others, {"status": 1, "estimate_hours": 1, "milestone": 1, "complexity": 1}
    )
    samples = history_samples(wide, {**by_id, **found}, calendar)
    if len(samples) >= MIN_HISTORY_SAMPLES:
        return Calibration(calibrate(samples), "workspace", len(samples))
    return Calibration(default_models(), "default", len(samples))


def _hours(value: float) -> float:
    return round(value, 4)


class _Lines:
    """The response lines of one computed schedule (tasks named by key and plan ref)."""

    def __init__(self, found: ProjectSchedule) -> None:
        self.names = {str(d["_id"]): d for d in found.docs}

    def who(self, task_id: str) -> dict[str, Any]:
        doc = self.names[task_id]
        return {"task_id": task_id, "key": doc.get("key"), "plan_ref": doc.get("plan_ref")}

    def task(self, task: ScheduledTask) -> dict[str, Any]:
        return {
            **self.who(task.id),
            "early_start": task.early_start,
            "early_finish": task.early_finish,
            "late_start": task.late_start,
            "late_finish": task.late_finish,
            "duration_hours": _hours(task.duration_hours),
            "total_slack_hours": _hours(task.total_slack_hours),
            "free_slack_hours": _hours(task.free_slack_hours),
            "critical": task.critical,
        }

    def violation(self, v: Violation) -> dict[str, Any]:
        return {
            **self.who(v.task),
            "predecessor_id": v.predecessor,
            "predecessor_key": self.names[v.predecessor].get("key"),
            "type": v.type.value,
            "lag_hours": _hours(v.lag_hours),
            "shortfall_hours": _hours(v.shortfall_hours),
        }


def schedule_out(project: Mapping[str, Any], found: ProjectSchedule) -> dict[str, Any]:
    schedule = found.schedule
    lines = _Lines(found)
    return {
        "project_id": project["_id"],
        "mode": schedule.mode.value,
        "calendar": {**calendar_out(found.calendar.calendar), "source": found.calendar.source},
        "project_start": schedule.project_start,
        "project_finish": schedule.project_finish,
        "duration_hours": _hours(schedule.duration_hours),
        "critical_path": [lines.who(task_id) for task_id in schedule.critical_path],
        "tasks": [lines.task(task) for task in schedule.tasks],
        "violations": [lines.violation(v) for v in schedule.violations],
    }


# --------------------------------------------------------------------------- baselines


def baseline_summary(doc: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": doc["_id"],
        "project_id": doc["project_id"],
        "name": doc.get("name"),
        "mode": doc.get("mode"),
        "project_start": doc.get("project_start"),
        "project_finish": doc.get("project_finish"),
        "task_count": doc.get("task_count", 0),
        "created_by": doc.get("created_by"),
        "created_at": doc.get("created_at"),
    }


async def create_baseline(
    ctx: ServiceContext, project: ProjectDoc, actor: Actor, name: str | None
) -> dict[str, Any]:
    """Freeze the project's current schedule (its early dates) as a baseline."""
    db = ctx.db
    found = await computed_schedule(db, project)
    frozen = freeze(found.schedule)
    now = utcnow()
    doc: Document = {
        "_id": new_id(),
        "project_id": project["_id"],
        "workspace_id": project["workspace_id"],
        "name": name or f"Baseline {now.strftime('%Y-%m-%d %H:%M')}",
        "mode": found.schedule.mode.value,
        "project_start": frozen.project_start,
        "project_finish": frozen.project_finish,
        "task_count": len(frozen.tasks),
        "tasks": [{"id": t.id, "start": t.start, "finish": t.finish} for t in frozen.tasks],
        "created_by": actor.user_id,
        "created_at": now,
    }
    if not await baselines.take_place(db, project["_id"]):
        raise Conflict(
            f"a project keeps at most {baselines.MAX_PER_PROJECT} baselines",
        )
    try:
        async with ctx.write() as unit:
            await baselines.insert(db, doc, session=unit.session)
            await record_change(
                db,
                events=[
                    event(
                        "project.baseline_created",
                        project,
                        actor,
                        baseline_id=doc["_id"],
                        name=doc["name"],
                        project_finish=frozen.project_finish,
                    )
                ],
                entries=[
                    entry(
                        project=project,
                        actor=actor,
                        entity="project",
                        entity_id=project["_id"],
                        action="baseline_created",
                        at=now,
                        data={"baseline_id": doc["_id"], "name": doc["name"]},
                    )
                ],
                session=unit.session,
            )
    except BaseException as error:
        if not quotas.outcome_unknown(error):
            await baselines.give_back(db, project["_id"])
        raise
    return baseline_summary(doc)


def _as_utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _stored_baseline(doc: Mapping[str, Any]) -> Baseline:
    return Baseline(
        project_start=_as_utc(doc["project_start"]),
        project_finish=_as_utc(doc["project_finish"]),
        tasks=tuple(
            BaselineTask(str(t["id"]), _as_utc(t["start"]), _as_utc(t["finish"]))
            for t in doc.get("tasks") or []
        ),
    )


async def compare_baseline(
    db: AsyncDatabase[Document], project: ProjectDoc, baseline_id: str
) -> dict[str, Any]:
    """The baseline against the project's current schedule (domain/baseline.compare)."""
    doc = await baselines.get(db, project["_id"], baseline_id[:100])
    if doc is None:
        raise NotFound("baseline not found")
    found = await computed_schedule(db, project)
    result = compare(
        _stored_baseline(doc), freeze(found.schedule), calendar=found.calendar.calendar
    )
    keys = {str(d["_id"]): d for d in found.docs}

    def change(c: TaskChange) -> dict[str, Any]:
        task = keys.get(c.id, {})
        return {
            "task_id": c.id,
            "key": task.get("key"),
            "plan_ref": task.get("plan_ref"),
            "baseline_start": c.baseline_start,
            "baseline_finish": c.baseline_finish,
            "current_start": c.current_start,
            "current_finish": c.current_finish,
            "start_change_hours": _hours(c.start_change_hours),
            "finish_change_hours": _hours(c.finish_change_hours),
            "finish_change_seconds": c.finish_change.total_seconds(),
        }

    return {
        "baseline": baseline_summary(doc),
        "baseline_finish": result.baseline_finish,
        "current_finish": result.current_finish,
        "finish_change_hours": _hours(result.finish_change_hours),
        "finish_change_seconds": result.finish_change.total_seconds(),
        "slipped": [change(c) for c in result.slipped],
        "pulled_in": [change(c) for c in result.pulled_in],
        "unchanged": result.unchanged,
        "new_tasks": list(result.new_tasks),
        "removed_tasks": list(result.removed_tasks),
    }


async def baseline_page(
    db: AsyncDatabase[Document], project: ProjectDoc, *, after: Any, limit: int
) -> tuple[list[Document], bool]:
    return await baselines.page(db, project["_id"], after=after, limit=limit)


# --------------------------------------------------------------------------- forecast

#: Projects up to this many tasks are forecast in the request; larger ones by a job.
FORECAST_SYNC_TASKS = 500
DEFAULT_FORECAST_RUNS = 1000
MAX_FORECAST_RUNS = 10_000
#: Memory for the simulation's matrices: in a request, and in the jobs worker.
REQUEST_MEMORY = 64 * 1024 * 1024
JOB_MEMORY = 256 * 1024 * 1024


def _percentiles_out(p: FinishPercentiles) -> dict[str, Any]:
    return {
        "p50": p.p50,
        "p85": p.p85,
        "p95": p.p95,
        "p50_hours": _hours(p.p50_hours),
        "p85_hours": _hours(p.p85_hours),
        "p95_hours": _hours(p.p95_hours),
    }


def forecast_out(
    project: Mapping[str, Any],
    docs: Sequence[Mapping[str, Any]],
    calendar: EffectiveCalendar,
    *,
    runs: int,
    seed: int,
    memory_budget: int,
    actuals: Mapping[str, WorkSpan] | None = None,
    models: Calibration | None = None,
) -> dict[str, Any]:
    """The Monte Carlo forecast of the project (domain/forecast.py; CPU-bound: the API
    runs it in a thread, the jobs worker for big projects): done tasks at their
    ``actuals``, the others drawn from the calibrated ``models`` (default: uncalibrated)."""
    mode = mode_of(project)
    cal = calendar.calendar
    spans = actuals or {}
    chosen = models or Calibration(default_models(), "default", 0)
    try:
        result = forecast_project(
            [schedule_task(doc, cal, mode, spans.get(str(doc["_id"]))) for doc in docs],
            calendar=cal,
            project_start=project_start(cal, project),
            runs=runs,
            seed=seed,
            models=chosen.models,
            mode=mode,
            memory_budget=memory_budget,
        )
    except WorkTimeOutOfRange as error:
        raise Conflict(f"the forecast cannot be computed: {error}") from None
    phase_names = {str(p["id"]): str(p["name"]) for p in project.get("phases") or []}
    by_id = {str(d["_id"]): d for d in docs}
    return {
        "project_id": project["_id"],
        "runs": result.runs,
        "seed": result.seed,
        "mode": mode.value,
        "calendar_source": calendar.source,
        "calibration": {
            "calibrated": chosen.calibrated,
            "source": chosen.source,
            "samples": chosen.samples,
        },
        "project_start": project_start(cal, project),
        "project": _percentiles_out(result.project),
        "phases": [
            {"phase_id": p.name, "name": phase_names.get(p.name), **_percentiles_out(p.finish)}
            for p in result.phases
        ],
        "criticality": [
            {
                "task_id": task_id,
                "key": by_id[task_id].get("key"),
                "plan_ref": by_id[task_id].get("plan_ref"),
                "index": round(index, 4),
            }
            for task_id, index in result.criticality.items()
        ],
    }


async def project_forecast(
    ctx: ServiceContext,
    project: ProjectDoc,
    *,
    runs: int,
    seed: int,
    memory_budget: int = JOB_MEMORY,
    actor: Actor | None = None,
) -> dict[str, Any]:
    """The forecast; when its P50/P85/P95 finish days differ from the project's last
    forecast, the new ones are kept on the project and ``project.forecast_changed`` is
    recorded (the first forecast of a project is kept without an event)."""
    db = ctx.db
    calendar = await effective_calendar(db, project)
    docs = await tasks.schedule_of(db, project["_id"])
    actuals = await status_spans(db, "project_id", project["_id"])
    models = await calibration(db, project, docs, actuals, calendar.calendar)
    body = await asyncio.to_thread(
        forecast_out,
        project,
        docs,
        calendar,
        runs=runs,
        seed=seed,
        memory_budget=memory_budget,
        actuals=actuals,
        models=models,
    )
    zone = calendar.calendar.zone
    days = {
        name: body["project"][name].astimezone(zone).date().isoformat()
        for name in ("p50", "p85", "p95")
    }
    current = await projects.get(db, project["_id"])
    previous = current.get("forecast_days") if current is not None else None
    if current is None or previous == days:
        return body
    async with ctx.write() as unit:
        await projects.set_forecast_days(db, project["_id"], days, session=unit.session)
        if previous is not None:
            await record_change(
                db,
                events=[
                    event(
                        "project.forecast_changed",
                        current,
                        actor or Actor(None, None),
                        before=previous,
                        after=days,
                        runs=runs,
                        seed=seed,
                    )
                ],
                entries=[],
                session=unit.session,
            )
    return body
