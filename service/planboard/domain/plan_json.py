"""Plan documents from the project's JSON export, so that the export can be imported back.

``GET /projects/{id}/export?format=json`` answers ``{"format": "planboard.project.v1",
"project": {...}, "phases": [...], "tasks": [...]}`` (services/exports.py, with the task
and project shapes of services/representations.py). :func:`plan_from_json` reads that
document into the :class:`~.model.PlanDocument` a Markdown import gives, with the same
rules; :func:`plan_to_json` writes a document of that shape from a plan (ids are made
up), and ``plan_from_json(plan_to_json(doc)) == doc``.

What is read (the rest of the export is checked for its type and size, then ignored):

- ``project``: ``name``, ``description``, ``target_users``, ``project_type``;
- ``phases`` (in list order): ``id``, ``name``, ``estimate_hours``;
- ``tasks`` (in list order under their phase; tasks without one go to a last phase named
  ``Unphased``, as in the Markdown export): ``id``, ``plan_ref`` (else the ``key``, made
  unique as the Markdown export does), ``title``, ``status``, ``complexity``,
  ``estimate_hours``, ``checklist``, ``phase_id`` / ``phase`` (id or name), and the
  scheduling fields ``priority``, ``start_date``, ``due_date``, ``milestone`` and
  ``dependencies`` (``[{"task_id", "type", "lag", "lag_unit"}]``); without
  ``dependencies``, ``blocked_by`` (ids) gives finish-to-start links without lag.

Hostile input: every object refuses unknown fields, every value has one JSON type (no
``"5"`` for 5, no ``1`` for true), lists are bounded before their items are read, and
nesting is only what the shape has, so nothing here recurses on the input. Every
problem is reported with its field path (``tasks.3.dependencies.0.task_id``) in one
:class:`~.errors.ValidationFailed`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

import marshmallow as m
from marshmallow import fields, validate

from .dag import assert_acyclic
from .errors import CycleDetected, ValidationFailed, describe_cycle
from .links import MAX_LAG, Dependency, Lag, LagUnit, LinkType
from .model import (
    ChecklistItem,
    Complexity,
    PlanDocument,
    PlanPhase,
    PlanTask,
    Priority,
    TaskStatus,
)
from .plan import MAX_ESTIMATE_HOURS, MAX_PLAN_REF, MAX_PLAN_TASKS, iso_day
from .text import (
    MAX_CHECKLIST,
    MAX_PHASE_NAME,
    MAX_PHASES,
    MAX_PROJECT_DESCRIPTION,
    MAX_PROJECT_NAME,
    MAX_TITLE,
    line_problem,
    text_problem,
)

FORMAT = "planboard.project.v1"
UNPHASED = "Unphased"
MAX_ERRORS = 50  # reported at most (a hostile document could hold millions)
MAX_ID = 100  # ids and keys
MAX_STAMP = 40  # timestamps, ignored
MAX_TASK_DESCRIPTION = 20_000  # the API's limit; ignored here
MAX_LABELS = 100  # ignored here; generous
_PLAN_REF = re.compile(rf"^[A-Za-z0-9][A-Za-z0-9._-]{{0,{MAX_PLAN_REF - 1}}}$")


# --------------------------------------------------------------------------- shape


class _Strict(m.Schema):
    class Meta:
        unknown = m.RAISE


class _Number(fields.Float):
    """A JSON number (not a numeric string, not a boolean), finite."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise m.ValidationError("must be a number")
        if not math.isfinite(value):
            raise m.ValidationError("must be a finite number")
        return float(value)


class _Integer(fields.Integer):
    """A JSON integer (not a boolean, not a string, not 1.0)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise m.ValidationError("must be an integer")
        return value


class _Bool(fields.Boolean):
    """Only JSON ``true`` / ``false``."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise m.ValidationError("must be true or false")
        return value


class _Day(fields.String):
    """A calendar date ``YYYY-MM-DD`` (kept as that string; read with plan.iso_day)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if not isinstance(value, str) or iso_day(value) is None:
            raise m.ValidationError("must be a date such as 2026-10-31")
        return value


class _List(fields.List):
    """A list of at most ``max_items``, counted before any item is read."""

    def __init__(self, inner: fields.Field, max_items: int, **kwargs: Any) -> None:
        super().__init__(inner, **kwargs)
        self.max_items = max_items

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[Any]:
        if isinstance(value, list) and len(value) > self.max_items:
            raise m.ValidationError(f"must hold at most {self.max_items} items")
        return list(super()._deserialize(value, attr, data, **kwargs))


def _text(max_length: int, **kwargs: Any) -> fields.String:
    return fields.String(validate=validate.Length(max=max_length), **kwargs)


def _id(**kwargs: Any) -> fields.String:
    return fields.String(validate=validate.Length(min=1, max=MAX_ID), **kwargs)


def _ids(max_items: int = MAX_PLAN_TASKS) -> _List:
    return _List(_id(), max_items)


def _choice(values: Sequence[str], **kwargs: Any) -> fields.String:
    return fields.String(validate=validate.OneOf(values), **kwargs)


class _ChecklistItem(_Strict):
    text = fields.String(required=True)
    done = _Bool(load_default=False)


class _Link(_Strict):
    task_id = _id(required=True)
    type = _choice([t.value for t in LinkType], load_default=LinkType.FS.value)
    lag = _Number(load_default=0.0, validate=validate.Range(-MAX_LAG, MAX_LAG))
    lag_unit = _choice([u.value for u in LagUnit], load_default=LagUnit.HOURS.value)


class _Phase(_Strict):
    id = _id(required=True)
    name = fields.String(required=True)
    estimate_hours = _Number(
        allow_none=True, load_default=None, validate=validate.Range(0, MAX_ESTIMATE_HOURS)
    )
    position = _Integer()
    task_count = _Integer()


class _Calendar(_Strict):
    """A project's working calendar: exported, not part of a plan."""

    weekdays = _List(_Integer(), 7)
    hours_per_day = _Number()
    holidays = _List(_text(10), 1000)
    timezone = _text(64)
    day_start = _text(5, allow_none=True)


class _Project(_Strict):
    name = fields.String(required=True)
    description = fields.String(allow_none=True, load_default="")
    target_users = fields.String(allow_none=True, load_default=None)
    project_type = fields.String(allow_none=True, load_default=None)
    # exported, not part of a plan
    id = _id()
    key = _id()
    workspace_id = _id()
    status = _id()
    start_date = _Day(allow_none=True)
    target_date = _Day(allow_none=True)
    phases = _List(fields.Nested(_Phase), MAX_PHASES)
    calendar = fields.Nested(_Calendar, allow_none=True)
    scheduling_mode = _choice(["automatic", "manual"])
    created_by = _id(allow_none=True)
    created_at = _text(MAX_STAMP, allow_none=True)
    updated_at = _text(MAX_STAMP, allow_none=True)
    version = _Integer()


class _Task(_Strict):
    id = _id(required=True)
    plan_ref = _id(allow_none=True, load_default=None)
    key = _id(allow_none=True, load_default=None)
    title = fields.String(required=True)
    status = _choice([s.value for s in TaskStatus], required=True)
    complexity = _choice([c.value for c in Complexity], allow_none=True, load_default=None)
    estimate_hours = _Number(
        allow_none=True, load_default=None, validate=validate.Range(0, MAX_ESTIMATE_HOURS)
    )
    checklist = _List(fields.Nested(_ChecklistItem), MAX_CHECKLIST, load_default=list)
    phase = fields.String(allow_none=True, load_default=None)
    phase_id = _id(allow_none=True, load_default=None)
    priority = _choice([p.value for p in Priority], allow_none=True, load_default=None)
    start_date = _Day(allow_none=True, load_default=None)
    due_date = _Day(allow_none=True, load_default=None)
    milestone = _Bool(load_default=False)
    dependencies = _List(fields.Nested(_Link), MAX_PLAN_TASKS)
    blocked_by = _ids()
    # exported, not part of a plan
    project_id = _id()
    workspace_id = _id()
    description = _text(MAX_TASK_DESCRIPTION, allow_none=True)
    assignee_id = _id(allow_none=True)
    labels = _List(_id(), MAX_LABELS)
    blocks = _ids()
    blocked_by_open = _ids()
    ready = _Bool()
    version = _Integer()
    created_at = _text(MAX_STAMP, allow_none=True)
    updated_at = _text(MAX_STAMP, allow_none=True)


class ExportDocument(_Strict):
    """The JSON export document (``format`` ``planboard.project.v1``)."""

    format = _choice([FORMAT], required=True)
    project = fields.Nested(_Project, required=True)
    phases = _List(fields.Nested(_Phase), MAX_PHASES, required=True)
    tasks = _List(fields.Nested(_Task), MAX_PLAN_TASKS, required=True)


_SHAPE = ExportDocument()


def _flatten(messages: Any, prefix: str) -> list[tuple[str, str]]:
    """marshmallow's nested messages as ``(path, message)``: ``tasks.3.title``."""
    if isinstance(messages, Mapping):
        pairs: list[tuple[str, str]] = []
        for key, value in messages.items():
            name = prefix if key == "_schema" else f"{prefix}.{key}" if prefix else str(key)
            pairs += _flatten(value, name)
        return pairs
    if isinstance(messages, list):
        return [pair for item in messages for pair in _flatten(item, prefix)]
    return [(prefix or "document", str(messages))]


def _failed(errors: Sequence[tuple[str, str]]) -> ValidationFailed:
    path, message = errors[0]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return ValidationFailed(
        errors[:MAX_ERRORS], f"the JSON export cannot be imported: {path}: {message}{more}"
    )


# --------------------------------------------------------------------------- reading


def plan_from_json(data: object) -> PlanDocument:
    """The plan a JSON export document holds; raises ValidationFailed naming every bad
    field by its path (at most MAX_ERRORS of them)."""
    if not isinstance(data, Mapping):
        raise _failed([("document", "must be a JSON object")])
    try:
        loaded: dict[str, Any] = _SHAPE.load(data)
    except m.ValidationError as error:
        raise _failed(_flatten(error.messages, "")) from None
    return _Reader(loaded).document()


class _Reader:
    """The checks a schema cannot make: text rules, references, uniqueness, cycles."""

    def __init__(self, loaded: dict[str, Any]) -> None:
        self.loaded = loaded
        self.errors: list[tuple[str, str]] = []

    def error(self, path: str, message: str) -> None:
        self.errors.append((path, message))

    def document(self) -> PlanDocument:
        project = self.loaded["project"]
        name = self.line("project.name", project["name"], MAX_PROJECT_NAME)
        description = self.text("project.description", project["description"] or "")
        target_users = self.text("project.target_users", project["target_users"] or "")
        project_type = self.text("project.project_type", project["project_type"] or "")
        phases = self.phases(self.loaded["phases"])
        tasks = self.loaded["tasks"]
        refs = self.refs(tasks)
        grouped: dict[str, list[PlanTask]] = {phase_id: [] for phase_id in phases}
        unphased: list[PlanTask] = []
        for index, task in enumerate(tasks):
            phase_id = self.phase_of(f"tasks.{index}", task, phases)
            built = self.task(f"tasks.{index}", task, refs)
            if built is not None:
                (unphased if phase_id is None else grouped.get(phase_id, unphased)).append(built)
        self.check_cycles(tasks, refs)
        if self.errors:
            raise _failed(self.errors)
        plan_phases = [
            PlanPhase(phase_name, estimate, tuple(grouped[phase_id]))
            for phase_id, (phase_name, estimate) in phases.items()
        ]
        if unphased:
            taken = {phase.name for phase in plan_phases}
            unphased_name = UNPHASED
            while unphased_name in taken:
                unphased_name += " tasks"
            plan_phases.append(PlanPhase(unphased_name, None, tuple(unphased)))
        return PlanDocument(
            name=name,
            description=description,
            phases=tuple(plan_phases),
            target_users=target_users or None,
            project_type=project_type or None,
        )

    # -- text

    def line(self, path: str, value: str, max_length: int) -> str:
        """One-line text (domain/text.py), trimmed as the API trims it."""
        text = value.strip()
        problem = line_problem(text, max_length)
        if problem is not None:
            self.error(path, problem)
        return text

    def text(self, path: str, value: str) -> str:
        problem = text_problem(value, MAX_PROJECT_DESCRIPTION)
        if problem is not None:
            self.error(path, problem)
        return value

    # -- phases and refs

    def phases(self, items: list[dict[str, Any]]) -> dict[str, tuple[str, float | None]]:
        """``phase id -> (name, estimate)`` in list order."""
        out: dict[str, tuple[str, float | None]] = {}
        names: dict[str, int] = {}
        for index, phase in enumerate(items):
            path = f"phases.{index}"
            name = self.line(f"{path}.name", phase["name"], MAX_PHASE_NAME)
            if phase["id"] in out:
                self.error(f"{path}.id", f"{phase['id']!r} is the id of an earlier phase too")
            elif name in names:
                self.error(f"{path}.name", f"phases.{names[name]} has the same name")
            else:
                names[name] = index
                out[phase["id"]] = (name, phase["estimate_hours"])
        return out

    def refs(self, tasks: list[dict[str, Any]]) -> dict[str, str]:
        """``task id -> ref``: the plan_ref, else the key, made unique as the Markdown export
        makes it (``PB-7``, then ``PB-7.2``, ...)."""
        refs: dict[str, str] = {}
        owners: dict[str, int] = {}
        for index, task in enumerate(tasks):
            if task["id"] in refs:
                self.error(f"tasks.{index}.id", f"{task['id']!r} is the id of an earlier task")
                continue
            ref = task["plan_ref"]
            if ref is None:
                continue
            if not _PLAN_REF.match(ref):
                self.error(f"tasks.{index}.plan_ref", _REF_RULE)
            elif ref in owners:
                self.error(f"tasks.{index}.plan_ref", f"tasks.{owners[ref]} has plan_ref {ref}")
            owners.setdefault(ref, index)
            refs[task["id"]] = ref
        for index, task in enumerate(tasks):
            if task["plan_ref"] is not None or task["id"] in refs:
                continue
            key = task["key"]
            if key is None:
                self.error(f"tasks.{index}.key", "a task without a plan_ref needs its key")
                continue
            candidate, n = key, 1
            while candidate in owners:
                n += 1
                candidate = f"{key}.{n}"
            if not _PLAN_REF.match(candidate):
                self.error(f"tasks.{index}.key", _REF_RULE)
            owners[candidate] = index
            refs[task["id"]] = candidate
        return refs

    def phase_of(
        self, path: str, task: dict[str, Any], phases: dict[str, tuple[str, float | None]]
    ) -> str | None:
        """The task's phase id: its ``phase_id``, else the phase its ``phase`` names."""
        phase_id: str | None = task["phase_id"]
        name: str | None = task["phase"]
        if phase_id is not None:
            if phase_id not in phases:
                self.error(f"{path}.phase_id", "names no phase of this export")
            elif name is not None and name != phases[phase_id][0]:
                self.error(f"{path}.phase", f"is not the name of phase {phase_id!r}")
            return phase_id
        if name is None:
            return None
        for candidate, (phase_name, _) in phases.items():
            if phase_name == name:
                return candidate
        self.error(f"{path}.phase", "names no phase of this export")
        return None

    # -- tasks

    def task(self, path: str, task: dict[str, Any], refs: dict[str, str]) -> PlanTask | None:
        title = self.line(f"{path}.title", task["title"], MAX_TITLE)
        checklist = tuple(
            ChecklistItem(
                self.line(f"{path}.checklist.{i}.text", item["text"], MAX_TITLE), item["done"]
            )
            for i, item in enumerate(task["checklist"])
        )
        start, due = _day(task["start_date"]), _day(task["due_date"])
        if start is not None and due is not None and start > due:
            self.error(f"{path}.start_date", f"is after the due_date {due.isoformat()}")
        if task["milestone"]:
            if task["estimate_hours"]:
                self.error(f"{path}.estimate_hours", "a milestone takes no time: must be 0 or null")
            if start is not None and due is not None and start != due:
                self.error(
                    f"{path}.due_date", "a milestone is a single day: must be its start_date"
                )
        links = self.links(path, task, refs)
        if task["id"] not in refs or links is None:
            return None
        return PlanTask(
            ref=refs[task["id"]],
            title=title,
            status=TaskStatus(task["status"]),
            complexity=Complexity(task["complexity"]) if task["complexity"] else None,
            estimate_hours=task["estimate_hours"],
            checklist=checklist,
            links=links,
            priority=Priority(task["priority"]) if task["priority"] else None,
            start=start,
            due=due,
            milestone=task["milestone"],
        )

    def links(
        self, path: str, task: dict[str, Any], refs: dict[str, str]
    ) -> tuple[Dependency, ...] | None:
        """The typed links, from ``dependencies`` (else ``blocked_by`` as FS + 0); None
        after an error."""
        typed = _links_field(task) == "dependencies"
        blocked_by: list[str] | None = task.get("blocked_by")
        items: list[dict[str, Any]] = (
            task["dependencies"] if typed else [{"task_id": b} for b in blocked_by or []]
        )
        links: list[Dependency] = []
        seen: set[str] = set()
        ok = True
        for index, item in enumerate(items):
            where = (
                f"{path}.dependencies.{index}.task_id" if typed else f"{path}.blocked_by.{index}"
            )
            predecessor = item["task_id"]
            if predecessor in seen:
                self.error(where, "names the same task as an earlier link: one link per task")
                ok = False
            elif predecessor not in refs:
                self.error(where, "names no task of this export")
                ok = False
            else:
                seen.add(predecessor)
                lag = Lag(item.get("lag", 0.0), LagUnit(item.get("lag_unit", "h")))
                links.append(Dependency(refs[predecessor], LinkType(item.get("type", "FS")), lag))
        if typed and blocked_by is not None and set(blocked_by) != seen and ok:
            self.error(f"{path}.blocked_by", "must name the tasks its dependencies name")
            ok = False
        return tuple(links) if ok else None

    def check_cycles(self, tasks: list[dict[str, Any]], refs: dict[str, str]) -> None:
        if self.errors:  # links may be missing: a cycle found now could be half the story
            return
        edges = {refs[t["id"]]: [refs[p] for p in _predecessor_ids(t)] for t in tasks}
        try:
            assert_acyclic(edges)
        except CycleDetected as error:
            # named from the cycle's first task in list order, as a Markdown import does
            members = error.cycle[:-1]
            order = {ref: index for index, ref in enumerate(edges)}
            first = min(members, key=order.__getitem__)
            at = members.index(first)
            rotated = [*members[at:], *members[:at], first]
            index = order[first]
            self.error(
                f"tasks.{index}.{_links_field(tasks[index])}",
                f"dependency cycle: {describe_cycle(rotated)}",
            )


_REF_RULE = (
    f"a plan ref is 1-{MAX_PLAN_REF} letters, digits, '.', '_' or '-', starting with a letter "
    "or digit (such as T2.1)"
)


def _day(value: str | None) -> date | None:
    return None if value is None else iso_day(value)


def _links_field(task: Mapping[str, Any]) -> str:
    """Where a task's links come from: ``dependencies`` when given, else ``blocked_by``."""
    return "dependencies" if task.get("dependencies") is not None else "blocked_by"


def _predecessor_ids(task: Mapping[str, Any]) -> list[str]:
    if _links_field(task) == "dependencies":
        return [item["task_id"] for item in task["dependencies"]]
    return list(task.get("blocked_by") or [])


# --------------------------------------------------------------------------- writing


def plan_to_json(doc: PlanDocument) -> dict[str, Any]:
    """The plan as a JSON export document (ids made up: ``phase-1``, ``task-1``, ...)."""
    phase_ids = {phase.name: f"phase-{n}" for n, phase in enumerate(doc.phases, start=1)}
    task_ids = {task.ref: f"task-{n}" for n, task in enumerate(doc.tasks(), start=1)}
    missing = [
        link.predecessor
        for t in doc.tasks()
        for link in t.links
        if link.predecessor not in task_ids
    ]
    if missing:
        raise ValueError(f"the plan links to tasks it does not hold: {', '.join(missing)}")
    return {
        "format": FORMAT,
        "project": {
            "name": doc.name,
            "description": doc.description,
            "target_users": doc.target_users,
            "project_type": doc.project_type,
        },
        "phases": [
            {
                "id": phase_ids[phase.name],
                "name": phase.name,
                "estimate_hours": phase.estimate_hours,
                "position": position,
                "task_count": len(phase.tasks),
            }
            for position, phase in enumerate(doc.phases)
        ],
        "tasks": [
            _task_json(task, phase, phase_ids[phase.name], task_ids)
            for phase in doc.phases
            for task in phase.tasks
        ],
    }


def _task_json(
    task: PlanTask, phase: PlanPhase, phase_id: str, task_ids: Mapping[str, str]
) -> dict[str, Any]:
    return {
        "id": task_ids[task.ref],
        "plan_ref": task.ref,
        "title": task.title,
        "checklist": [{"text": item.text, "done": item.done} for item in task.checklist],
        "status": task.status.value,
        "complexity": task.complexity.value if task.complexity else None,
        "estimate_hours": task.estimate_hours,
        "phase": phase.name,
        "phase_id": phase_id,
        "priority": task.priority.value if task.priority else None,
        "start_date": task.start.isoformat() if task.start else None,
        "due_date": task.due.isoformat() if task.due else None,
        "milestone": task.milestone,
        "dependencies": [
            {
                "task_id": task_ids[link.predecessor],
                "type": link.type.value,
                "lag": link.lag.amount,
                "lag_unit": link.lag.unit.value,
            }
            for link in task.links
        ],
        "blocked_by": [task_ids[link.predecessor] for link in task.links],
    }
