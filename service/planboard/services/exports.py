"""Project exports: the Markdown plan (round-trips through import), CSV rows, and the
mermaid pictures (dependency graph, gantt chart; ``domain/diagrams.py``).

Markdown: phases in order, tasks in key order under their phase, each with its
``plan_ref`` (tasks without one get their key as a stable ref), dependencies as refs,
checklists as Description bullets, progress filled in. Tasks without a phase go to a
last phase named ``Unphased`` (the plan format puts every task under a phase).

CSV: RFC 4180 (``\\r\\n``, double quotes doubled), one header row, and cells that a
spreadsheet would run as a formula (starting with ``= + - @``, tab or CR) prefixed
with ``'``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import orjson
from pymongo.asynchronous.database import AsyncDatabase

from planboard.domain import diagrams
from planboard.domain.errors import Conflict
from planboard.domain.links import Dependency, Lag, LagUnit, LinkType, format_dependency
from planboard.domain.model import (
    ChecklistItem,
    Complexity,
    PlanDocument,
    PlanPhase,
    PlanTask,
    Priority,
    TaskStatus,
)
from planboard.domain.plan import render_plan
from planboard.domain.progress import critical_path
from planboard.services import projects as project_service
from planboard.services import scheduling
from planboard.services import tasks as task_service
from planboard.services.projects import hours_of, ordered_phases, task_nodes
from planboard.services.representations import link_of, phase_out, project_out, task_out
from planboard.services.tasks import TaskView
from planboard.store import tasks as task_store
from planboard.store.document import Document
from planboard.store.documents import ProjectDoc
from planboard.store.tasks import id_list

UNPHASED = "Unphased"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CSV_COLUMNS = [
    "key",
    "plan_ref",
    "title",
    "status",
    "complexity",
    "estimate_hours",
    "phase",
    "assignee_id",
    "labels",
    "due_date",
    "blocked_by",
    "blocks",
    "ready",
    "checklist_done",
    "checklist_total",
    "description",
    "created_at",
    "updated_at",
    "start_date",
    "priority",
    "milestone",
    "dependencies",
]


def links_of(doc: Mapping[str, Any], refs: Mapping[str, str]) -> tuple[Dependency, ...]:
    """``doc``'s typed dependencies, predecessors named by ``refs`` (task id -> ref or key);
    links to tasks ``refs`` does not hold are left out."""
    out = []
    for blocker in id_list(doc, "blocked_by"):
        if blocker in refs:
            link = link_of(doc, blocker)
            lag = Lag(float(link["lag"]), LagUnit(link["lag_unit"]))
            out.append(Dependency(refs[blocker], LinkType(link["type"]), lag))
    return tuple(out)


def _day(value: object) -> date | None:
    return date.fromisoformat(value) if isinstance(value, str) else None


def plan_refs(docs: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """``task id -> ref``: the plan_ref, else the key (made unique if a ref already uses it)."""
    taken = {str(d["plan_ref"]) for d in docs if d.get("plan_ref")}
    refs: dict[str, str] = {}
    for doc in docs:
        if doc.get("plan_ref"):
            refs[doc["_id"]] = str(doc["plan_ref"])
            continue
        ref = doc["key"]
        candidate, n = ref, 1
        while candidate in taken:
            n += 1
            candidate = f"{ref}.{n}"
        taken.add(candidate)
        refs[doc["_id"]] = candidate
    return refs


def plan_document(project: Mapping[str, Any], docs: Sequence[Mapping[str, Any]]) -> PlanDocument:
    """The stored project as a plan document (what ``render_plan`` writes)."""
    refs = plan_refs(docs)
    phases = ordered_phases(project)
    grouped: dict[str, list[PlanTask]] = {str(p["id"]): [] for p in phases}
    unphased: list[PlanTask] = []
    for doc in docs:
        task = PlanTask(
            ref=refs[doc["_id"]],
            title=doc["title"],
            status=TaskStatus(doc["status"]),
            complexity=Complexity(str(doc["complexity"])) if doc.get("complexity") else None,
            estimate_hours=doc.get("estimate_hours"),
            links=links_of(doc, refs),
            priority=Priority(str(doc["priority"])) if doc.get("priority") else None,
            start=_day(doc.get("start_date")),
            due=_day(doc.get("due_date")),
            milestone=bool(doc.get("milestone")),
            checklist=tuple(
                ChecklistItem(str(item["text"]), bool(item.get("done")))
                for item in doc.get("checklist") or []
            ),
        )
        grouped.get(str(doc.get("phase_id")), unphased).append(task)
    plan_phases = [
        PlanPhase(
            str(p["name"]),
            hours_of(p.get("estimate_hours")),
            tuple(grouped[str(p["id"])]),
        )
        for p in phases
    ]
    if unphased:
        names = {p.name for p in plan_phases}
        name = UNPHASED
        while name in names:
            name += " tasks"
        plan_phases.append(PlanPhase(name, None, tuple(unphased)))
    return PlanDocument(
        name=project["name"],
        description=str(project.get("description") or ""),
        phases=tuple(plan_phases),
        target_users=project.get("target_users"),
        project_type=project.get("project_type"),
    )


def markdown(project: Mapping[str, Any], docs: Sequence[Mapping[str, Any]]) -> str:
    created, updated = project.get("created_at"), project.get("updated_at")
    return render_plan(
        plan_document(project, docs),
        generated=created.date() if isinstance(created, datetime) else None,
        updated=updated.date() if isinstance(updated, datetime) else None,
    )


def safe_cell(value: object) -> str:
    """The cell text, neutralized if a spreadsheet would evaluate it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, float):
        return repr(value) if not value.is_integer() else str(int(value))
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_text(views: Sequence[TaskView], keys: Mapping[str, str]) -> str:
    """The tasks as CSV; ``keys`` maps task ids to keys (for dependency columns)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(CSV_COLUMNS)
    for view in views:
        doc = view.doc
        checklist: Any = doc.get("checklist") or []
        row = {
            "key": doc["key"],
            "plan_ref": doc.get("plan_ref"),
            "title": doc["title"],
            "status": doc["status"],
            "complexity": doc.get("complexity"),
            "estimate_hours": doc.get("estimate_hours"),
            "phase": view.phase,
            "assignee_id": doc.get("assignee_id"),
            "labels": ";".join(id_list(doc, "labels")),
            "due_date": doc.get("due_date"),
            "blocked_by": ";".join(keys.get(b, b) for b in id_list(doc, "blocked_by")),
            "blocks": ";".join(keys.get(b, b) for b in id_list(doc, "blocks")),
            "ready": view.ready,
            "checklist_done": sum(1 for item in checklist if item.get("done")),
            "checklist_total": len(checklist),
            "description": doc.get("description") or "",
            "created_at": doc.get("created_at"),
            "updated_at": doc.get("updated_at"),
            "start_date": doc.get("start_date"),
            "priority": doc.get("priority"),
            "milestone": bool(doc.get("milestone")),
            "dependencies": ";".join(format_dependency(link) for link in links_of(doc, keys)),
        }
        writer.writerow([safe_cell(row[column]) for column in CSV_COLUMNS])
    return out.getvalue()


def _scheduled_days(
    doc: Mapping[str, Any], found: scheduling.ProjectSchedule | None
) -> tuple[date | None, date | None]:
    """A task's first and last day in the schedule (the calendar's zone), for tasks with
    an estimate and milestones; (None, None) otherwise."""
    if found is None or not (doc.get("milestone") or hours_of(doc.get("estimate_hours"))):
        return None, None
    task = found.schedule.by_id().get(str(doc["_id"]))
    if task is None:
        return None, None
    zone = found.calendar.calendar.zone
    start, end = task.early_start.astimezone(zone).date(), task.early_finish.astimezone(zone).date()
    return (end, end) if doc.get("milestone") else (start, end)


def diagram_tasks(
    project: Mapping[str, Any],
    docs: Sequence[Mapping[str, Any]],
    found: scheduling.ProjectSchedule | None = None,
) -> tuple[list[str], list[diagrams.DiagramTask]]:
    """The phase names in order and the tasks as the pictures need them (refs as in the
    Markdown export); with the project's schedule, the dates it gives them, earliest first."""
    refs = plan_refs(docs)
    phases = ordered_phases(project)
    position = {str(p["id"]): index for index, p in enumerate(phases)}
    days = {str(doc["_id"]): _scheduled_days(doc, found) for doc in docs}
    tasks = [
        diagrams.DiagramTask(
            id=doc["_id"],
            key=doc["key"],
            ref=refs[doc["_id"]],
            title=doc["title"],
            status=TaskStatus(doc["status"]),
            estimate_hours=hours_of(doc.get("estimate_hours")),
            phase=position.get(str(doc.get("phase_id"))),
            blocked_by=tuple(id_list(doc, "blocked_by")),
            due=diagrams.parse_date(doc.get("due_date")),
            start=days[str(doc["_id"])][0],
            end=days[str(doc["_id"])][1],
            milestone=bool(doc.get("milestone")),
        )
        for doc in docs
    ]
    if found is not None:
        by_id = found.schedule.by_id()
        never = (datetime.max.replace(tzinfo=UTC),) * 2

        def when(task: diagrams.DiagramTask) -> tuple[datetime, datetime]:
            scheduled = by_id.get(task.id)
            if task.start is None or scheduled is None:
                return never
            return scheduled.early_start, scheduled.early_finish

        tasks.sort(key=when)  # stable: key order among equals
    return [str(p["name"]) for p in phases], tasks


def mermaid(
    project: ProjectDoc,
    docs: Sequence[Mapping[str, object]],
    diagram: str,
    found: scheduling.ProjectSchedule | None = None,
) -> str:
    """The project's dependency graph (``graph``) or gantt chart (``gantt``) in mermaid.

    The gantt chart draws the tasks at their dates in ``found``, the project's schedule
    (bars for tasks with an estimate, milestones for milestones, its critical path as
    ``crit``); a task with neither but a due date is a milestone on that day. Conflict
    when it would draw nothing.
    """
    if diagram == "graph":
        phases, tasks = diagram_tasks(project, docs)
        path = critical_path(task_nodes(project, docs))
        return diagrams.flowchart(
            project["name"], project["key"], phases, tasks, path.ids, path.hours
        )
    name, key = project["name"], project["key"]
    phases, tasks = diagram_tasks(project, docs, found)
    chart = diagrams.gantt(
        name,
        key,
        phases,
        tasks,
        found.schedule.critical_path if found is not None else (),
        project_start=diagrams.parse_date(project.get("start_date")),
        project_target=diagrams.parse_date(project.get("target_date")),
        unphased=UNPHASED,
    )
    if chart is None:
        raise Conflict(
            f"no task of project {key} has an estimate, a due date or the milestone flag, "
            "so there is no gantt chart to draw: set estimate_hours on tasks (the "
            "dependency graph, diagram=graph, needs none)"
        )
    return chart


EXPORT_FORMATS = ("markdown", "json", "csv", "mermaid")
#: The pictures ``format=mermaid`` draws (``diagram=``).
DIAGRAMS = ("graph", "gantt")
MERMAID_TYPE = "text/vnd.mermaid"


@dataclass(frozen=True, slots=True)
class Rendered:
    body: bytes
    content_type: str
    filename: str


async def render(
    db: AsyncDatabase[Document], project: ProjectDoc, kind: str, diagram: str = "graph"
) -> Rendered:
    """The export document of ``project`` in ``kind`` (used by the API and the jobs worker);
    ``diagram`` picks the picture of the ``mermaid`` format."""
    docs = await task_store.in_project(db, project["_id"])
    key = project["key"]
    if kind == "markdown":
        return Rendered(markdown(project, docs).encode(), "text/markdown", f"{key}-plan.md")
    if kind == "mermaid":
        if diagram not in DIAGRAMS:
            raise ValueError(f"unknown diagram {diagram!r}")
        found = None
        if diagram == "gantt":
            found = await scheduling.computed_schedule(db, project)
        text = mermaid(project, docs, diagram, found)
        return Rendered(text.encode(), MERMAID_TYPE, f"{key}-{diagram}.mmd")
    views = await task_service.views(db, project, docs)
    if kind == "json":
        phases = await project_service.phases_with_counts(db, project)
        body = {
            "format": "planboard.project.v1",
            "project": project_out(project),
            "phases": [phase_out(p, int(str(p["task_count"]))) for p in phases],
            "tasks": [task_out(v) for v in views],
        }
        return Rendered(json_bytes(body), "application/json", f"{key}.json")
    if kind == "csv":
        keys = {d["_id"]: d["key"] for d in docs}
        return Rendered(csv_text(views, keys).encode(), "text/csv", f"{key}.csv")
    raise ValueError(f"unknown export format {kind!r}")


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    raise TypeError(f"cannot serialize {type(value).__name__}")


def json_bytes(data: Any) -> bytes:
    return orjson.dumps(data, default=_json_default, option=orjson.OPT_PASSTHROUGH_DATETIME)
