"""Plans from the JSON export: its shape, references, hostile input, round trip."""

from __future__ import annotations

import copy
import json
from datetime import date
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from planboard.domain.errors import ValidationFailed
from planboard.domain.links import Dependency, Lag, LagUnit, LinkType
from planboard.domain.model import (
    ChecklistItem,
    Complexity,
    PlanDocument,
    PlanPhase,
    PlanTask,
    Priority,
    TaskStatus,
)
from planboard.domain.plan import MAX_PLAN_TASKS, parse_plan, render_plan
from planboard.domain.plan_json import MAX_ERRORS, plan_from_json, plan_to_json
from tests.unit.domain.strategies import plan_documents

WS, PROJECT = "6650aa000000000000000001", "6650aa000000000000000002"
P1, P2, P3 = "6650aa0000000000000000f1", "6650aa0000000000000000f2", "6650aa0000000000000000f3"
T1, T2, T3, T4 = (f"6650aa00000000000000001{n}" for n in range(1, 5))
STAMP = "2026-10-02T09:00:00.000Z"


def exported_task(
    task_id: str, seq: int, plan_ref: str | None, phase: tuple[str, str] | None, **fields: Any
) -> dict[str, Any]:
    """A task as ``GET /projects/{id}/export?format=json`` writes it today
    (services/representations.py ``task_out``)."""
    return {
        "id": task_id,
        "key": f"BOOK-{seq}",
        "project_id": PROJECT,
        "workspace_id": WS,
        "plan_ref": plan_ref,
        "title": f"Task {seq}",
        "description": "Longer *Markdown* text\nover lines",
        "checklist": [],
        "status": "todo",
        "complexity": None,
        "estimate_hours": None,
        "phase": phase[1] if phase else None,
        "phase_id": phase[0] if phase else None,
        "assignee_id": None,
        "labels": ["backend"],
        "due_date": None,
        "blocked_by": [],
        "blocks": [],
        "blocked_by_open": [],
        "ready": True,
        "version": 3,
        "created_at": STAMP,
        "updated_at": STAMP,
        **fields,
    }


PHASES = [
    {"id": P1, "name": "Phase 1: Foundation", "estimate_hours": 12.0, "position": 0},
    {"id": P2, "name": "Phase 2: Core API", "estimate_hours": None, "position": 1},
    {"id": P3, "name": "Unphased", "estimate_hours": None, "position": 2},
]
FOUNDATION, CORE = (P1, "Phase 1: Foundation"), (P2, "Phase 2: Core API")


def export() -> dict[str, Any]:
    """Today's JSON export of a project: tasks in key order (not grouped by phase), one
    without a phase, one without a plan_ref (its ref is its key, made unique because a
    plan_ref already is ``BOOK-4``), dependencies as ``blocked_by`` ids."""
    return {
        "format": "planboard.project.v1",
        "project": {
            "id": PROJECT,
            "key": "BOOK",
            "name": "Bookshelf",
            "description": "A lending library API.",
            "workspace_id": WS,
            "status": "active",
            "start_date": "2026-10-01",
            "target_date": None,
            "target_users": "Reading clubs",
            "project_type": None,
            "phases": copy.deepcopy(PHASES),
            "created_by": "6650aa0000000000000000aa",
            "created_at": STAMP,
            "updated_at": STAMP,
            "version": 7,
        },
        "phases": [
            {**phase, "task_count": n}
            for phase, n in zip(copy.deepcopy(PHASES), [2, 1, 0], strict=True)
        ],
        "tasks": [
            exported_task(
                T1,
                1,
                "T1.1",
                FOUNDATION,
                status="done",
                complexity="low",
                estimate_hours=1.5,
                checklist=[{"text": "Initialize", "done": True}, {"text": "Lint", "done": False}],
                blocks=[T2, T3],
                due_date="2026-10-05",
            ),
            exported_task(T2, 2, "T2.1", CORE, blocked_by=[T1], status="in_progress"),
            exported_task(T3, 3, None, FOUNDATION, blocked_by=[T1, T4], ready=False),
            exported_task(T4, 4, "BOOK-3", None, title="  Hand-made  ", blocks=[T3]),
        ],
    }


def test_todays_export_reads_as_its_markdown_export() -> None:
    doc = plan_from_json(export())
    assert doc == PlanDocument(
        name="Bookshelf",
        description="A lending library API.",
        target_users="Reading clubs",
        project_type=None,
        phases=(
            PlanPhase(
                "Phase 1: Foundation",
                12.0,
                (
                    PlanTask(
                        "T1.1",
                        "Task 1",
                        TaskStatus.DONE,
                        Complexity.LOW,
                        1.5,
                        checklist=(ChecklistItem("Initialize", True), ChecklistItem("Lint")),
                        due=date(2026, 10, 5),
                    ),
                    PlanTask("BOOK-3.2", "Task 3", dependencies=("T1.1", "BOOK-3")),
                ),
            ),
            PlanPhase(
                "Phase 2: Core API",
                None,
                (PlanTask("T2.1", "Task 2", TaskStatus.IN_PROGRESS, dependencies=("T1.1",)),),
            ),
            PlanPhase("Unphased", None, ()),
            PlanPhase("Unphased tasks", None, (PlanTask("BOOK-3", "Hand-made"),)),
        ),
    )
    assert all(
        link.type is LinkType.FS and link.lag == Lag() for t in doc.tasks() for link in t.links
    )
    assert parse_plan(render_plan(doc)) == doc  # and it is a plan like any other


def test_scheduling_fields() -> None:
    data = export()
    data["tasks"][2].update(
        priority="urgent",
        start_date="2026-10-06",
        due_date="2026-10-09",
        dependencies=[
            {"task_id": T4, "type": "SS", "lag": 2, "lag_unit": "d"},
            {"task_id": T1, "type": "FF", "lag": -4.5},
        ],
        blocked_by=[T1, T4],
    )
    data["tasks"][1].update(milestone=True, estimate_hours=0, dependencies=[{"task_id": T1}])
    doc = plan_from_json(data)
    third, second = doc.phases[0].tasks[1], doc.phases[1].tasks[0]
    assert third.priority is Priority.URGENT
    assert (third.start, third.due) == (date(2026, 10, 6), date(2026, 10, 9))
    assert third.links == (
        Dependency("BOOK-3", LinkType.SS, Lag(2, LagUnit.DAYS)),
        Dependency("T1.1", LinkType.FF, Lag(-4.5)),
    )
    assert (second.milestone, second.estimate_hours, second.links) == (
        True,
        0.0,
        (Dependency("T1.1"),),
    )


def test_dependencies_alone_or_with_blocked_by_naming_the_same_tasks() -> None:
    data = export()
    del data["tasks"][2]["blocked_by"]
    data["tasks"][2]["dependencies"] = [{"task_id": T1, "type": "SF", "lag": -1, "lag_unit": "d"}]
    data["tasks"][1]["blocked_by"] = [T1]
    data["tasks"][1]["dependencies"] = [{"task_id": T1, "type": "SS"}]
    doc = plan_from_json(data)
    assert doc.phases[0].tasks[1].links == (Dependency("T1.1", LinkType.SF, Lag(-1, LagUnit.DAYS)),)
    assert doc.phases[1].tasks[0].links == (Dependency("T1.1", LinkType.SS),)
    data["tasks"][0]["dependencies"] = [{"task_id": T3, "type": "SS"}]
    assert refusal(data).errors == [
        ("tasks.0.blocked_by", "must name the tasks its dependencies name")
    ]
    del data["tasks"][0]["blocked_by"]
    assert refusal(data).errors == [
        ("tasks.0.dependencies", "dependency cycle: T1.1 -> BOOK-3.2 -> T1.1")
    ]


def test_a_phase_is_found_by_name_without_its_id() -> None:
    data = export()
    data["tasks"][3].update(phase="Phase 2: Core API")
    assert [t.ref for t in plan_from_json(data).phases[1].tasks] == ["T2.1", "BOOK-3"]


def test_an_empty_project_is_a_plan_without_tasks() -> None:
    data = export()
    data["tasks"] = []
    doc = plan_from_json(data)
    assert [p.tasks for p in doc.phases] == [(), (), ()]


def test_plan_to_json_writes_the_export_shape() -> None:
    doc = parse_plan(render_plan(plan_from_json(export())))
    data = plan_to_json(doc)
    assert data["format"] == "planboard.project.v1"
    assert [p["id"] for p in data["phases"]] == ["phase-1", "phase-2", "phase-3", "phase-4"]
    third = data["tasks"][1]
    assert third == {
        "id": "task-2",
        "plan_ref": "BOOK-3.2",
        "title": "Task 3",
        "checklist": [],
        "status": "todo",
        "complexity": None,
        "estimate_hours": None,
        "phase": "Phase 1: Foundation",
        "phase_id": "phase-1",
        "priority": None,
        "start_date": None,
        "due_date": None,
        "milestone": False,
        "dependencies": [
            {"task_id": "task-1", "type": "FS", "lag": 0.0, "lag_unit": "h"},
            {"task_id": "task-4", "type": "FS", "lag": 0.0, "lag_unit": "h"},
        ],
        "blocked_by": ["task-1", "task-4"],
    }
    with pytest.raises(ValueError, match="links to tasks it does not hold: X"):
        plan_to_json(
            PlanDocument(
                "N", phases=(PlanPhase("P", None, (PlanTask("A", "a", dependencies=("X",)),)),)
            )
        )


# --------------------------------------------------------------------------- round trip


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(plan_documents())
def test_plan_to_json_then_back_gives_the_document(doc: PlanDocument) -> None:
    """Through real JSON text too: every field, all link types, signed lags in h and d."""
    data = plan_to_json(doc)
    assert plan_from_json(data) == doc
    assert plan_from_json(json.loads(json.dumps(data))) == doc
    assert plan_to_json(plan_from_json(data)) == data


# --------------------------------------------------------------------------- hostile input


def changed(path: str, value: Any) -> dict[str, Any]:
    """The export with the value at ``a.0.b`` replaced (``...=DELETE`` removes it)."""
    data = export()
    *parents, last = path.split(".")
    node: Any = data
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    key: Any = int(last) if isinstance(node, list) else last
    if value is DELETE:
        del node[key]
    else:
        node[key] = value
    return data


DELETE = object()


def refusal(data: object) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as raised:
        plan_from_json(data)
    return raised.value


@pytest.mark.parametrize(
    ("path", "value", "field", "message"),
    [
        # shape: types, unknown and missing fields, sizes
        ("format", "planboard.project.v2", "format", "Must be one of: planboard.project.v1"),
        ("format", DELETE, "format", "Missing data for required field."),
        ("evil", 1, "evil", "Unknown field."),
        ("project.evil", {"deep": [1]}, "project.evil", "Unknown field."),
        ("tasks.1.scheduled_start", "2026-01-01", "tasks.1.scheduled_start", "Unknown field."),
        ("tasks.0.checklist.0.note", "x", "tasks.0.checklist.0.note", "Unknown field."),
        ("project", [], "project", "Invalid input type."),
        ("tasks", {}, "tasks", "Not a valid list."),
        ("tasks.0", "T1.1", "tasks.0", "Invalid input type."),
        ("tasks.0.title", 5, "tasks.0.title", "Not a valid string."),
        ("tasks.0.title", {"text": "x"}, "tasks.0.title", "Not a valid string."),
        ("tasks.0.title", None, "tasks.0.title", "Field may not be null."),
        ("tasks.0.estimate_hours", "5", "tasks.0.estimate_hours", "must be a number"),
        ("tasks.0.estimate_hours", True, "tasks.0.estimate_hours", "must be a number"),
        ("tasks.0.estimate_hours", float("nan"), "tasks.0.estimate_hours", "must be a finite"),
        (
            "tasks.0.estimate_hours",
            10_001,
            "tasks.0.estimate_hours",
            "greater than or equal to 0 and less than or equal to 10000.0.",
        ),
        (
            "tasks.0.estimate_hours",
            -1,
            "tasks.0.estimate_hours",
            "greater than or equal to 0 and less than or equal to 10000.0.",
        ),
        ("tasks.0.milestone", 1, "tasks.0.milestone", "must be true or false"),
        ("tasks.0.version", True, "tasks.0.version", "must be an integer"),
        ("tasks.0.version", 1.0, "tasks.0.version", "must be an integer"),
        ("tasks.0.status", "started", "tasks.0.status", "Must be one of: todo, in_progress"),
        ("tasks.0.priority", "p1", "tasks.0.priority", "Must be one of: low, medium, high"),
        ("tasks.0.complexity", "Low", "tasks.0.complexity", "Must be one of: low, medium"),
        ("tasks.0.due_date", "2026-02-30", "tasks.0.due_date", "must be a date such as"),
        ("tasks.0.due_date", "2026-10-05T00:00:00Z", "tasks.0.due_date", "must be a date"),
        ("tasks.0.due_date", 20261005, "tasks.0.due_date", "must be a date"),
        ("tasks.0.labels", [["nested", ["deeper"]]], "tasks.0.labels.0", "Not a valid string."),
        ("tasks.0.labels", ["x"] * 101, "tasks.0.labels", "must hold at most 100 items"),
        ("tasks.0.checklist", [{"text": "x"}] * 201, "tasks.0.checklist", "at most 200 items"),
        ("tasks.0.id", "", "tasks.0.id", "Length must be between 1 and 100."),
        ("tasks.0.description", "x" * 20_001, "tasks.0.description", "Longer than maximum"),
        ("phases", [PHASES[0]] * 101, "phases", "must hold at most 100 items"),
        ("tasks", [None] * (MAX_PLAN_TASKS + 1), "tasks", "must hold at most 5000 items"),
        ("tasks.0.dependencies", [{"type": "SS"}], "tasks.0.dependencies.0.task_id", "Missing"),
        (
            "tasks.0.dependencies",
            [{"task_id": T2, "type": "XX"}],
            "tasks.0.dependencies.0.type",
            "Must be one of: FS, SS, FF, SF.",
        ),
        (
            "tasks.0.dependencies",
            [{"task_id": T2, "lag": 10_001}],
            "tasks.0.dependencies.0.lag",
            "greater than or equal to -10000.0 and less than or equal to 10000.0.",
        ),
        (
            "tasks.0.dependencies",
            [{"task_id": T2, "lag": "2d"}],
            "tasks.0.dependencies.0.lag",
            "must be a number",
        ),
        (
            "tasks.0.dependencies",
            [{"task_id": T2, "lag_unit": "w"}],
            "tasks.0.dependencies.0.lag_unit",
            "Must be one of: h, d.",
        ),
        ("tasks.0.dependencies", None, "tasks.0.dependencies", "Field may not be null."),
        # meaning: text rules, references, uniqueness, dates, milestones, cycles
        ("project.name", "  ", "project.name", "must not be empty"),
        ("project.name", "B\x1bk", "project.name", "must not contain control characters (U+001B)"),
        ("tasks.0.title", "x" * 501, "tasks.0.title", "must be at most 500 characters"),
        ("tasks.0.checklist.0.text", "a\nb", "tasks.0.checklist.0.text", "control characters"),
        ("phases.1.name", "Phase 1: Foundation", "phases.1.name", "phases.0 has the same name"),
        ("phases.1.id", P1, "phases.1.id", "is the id of an earlier phase too"),
        ("tasks.1.id", T1, "tasks.1.id", "is the id of an earlier task"),
        ("tasks.1.plan_ref", "T1.1", "tasks.1.plan_ref", "tasks.0 has plan_ref T1.1"),
        ("tasks.1.plan_ref", "T 2", "tasks.1.plan_ref", "a plan ref is 1-50 letters"),
        ("tasks.1.plan_ref", "T" * 51, "tasks.1.plan_ref", "a plan ref is 1-50 letters"),
        ("tasks.1.plan_ref", "T" * 101, "tasks.1.plan_ref", "Length must be between 1 and 100."),
        ("tasks.2.key", None, "tasks.2.key", "a task without a plan_ref needs its key"),
        ("tasks.2.key", "BOOK 3", "tasks.2.key", "a plan ref is 1-50 letters"),
        ("tasks.0.phase_id", "nope", "tasks.0.phase_id", "names no phase of this export"),
        ("tasks.0.phase", "Phase 2: Core API", "tasks.0.phase", f"is not the name of phase {P1!r}"),
        ("tasks.3.phase", "Phase 9", "tasks.3.phase", "names no phase of this export"),
        ("tasks.1.blocked_by", ["nope"], "tasks.1.blocked_by.0", "names no task of this export"),
        (
            "tasks.2.blocked_by",
            [T1, T1],
            "tasks.2.blocked_by.1",
            "names the same task as an earlier",
        ),
        (
            "tasks.1.dependencies",
            [{"task_id": "x"}],
            "tasks.1.dependencies.0.task_id",
            "names no task",
        ),
        (
            "tasks.1.dependencies",
            [{"task_id": T1}, {"task_id": T1, "type": "SS"}],
            "tasks.1.dependencies.1.task_id",
            "names the same task as an earlier link: one link per task",
        ),
        (
            "tasks.1.dependencies",
            [{"task_id": T4}],
            "tasks.1.blocked_by",
            "must name the tasks its dependencies name",
        ),
        (
            "tasks.0.blocked_by",
            [T3],
            "tasks.0.blocked_by",
            "dependency cycle: T1.1 -> BOOK-3.2 -> T1.1",
        ),
        (
            "tasks.3.blocked_by",
            [T4],
            "tasks.3.blocked_by",
            "dependency cycle: BOOK-3 -> BOOK-3",
        ),
        (
            "tasks.0.start_date",
            "2026-10-06",
            "tasks.0.start_date",
            "is after the due_date 2026-10-05",
        ),
        ("tasks.0.milestone", True, "tasks.0.estimate_hours", "a milestone takes no time"),
    ],
)
def test_hostile_exports_are_refused_with_the_field_path(
    path: str, value: Any, field: str, message: str
) -> None:
    error = refusal(changed(path, value))
    assert any(name == field and message in text for name, text in error.errors), error.errors
    first, text = error.errors[0]
    assert error.detail.startswith(f"the JSON export cannot be imported: {first}: {text}")


def test_a_milestone_is_a_single_day() -> None:
    data = export()
    data["tasks"][1].update(milestone=True, start_date="2026-10-06", due_date="2026-10-07")
    assert refusal(data).errors == [
        ("tasks.1.due_date", "a milestone is a single day: must be its start_date")
    ]


@pytest.mark.parametrize("data", [None, [], "export", 5, [export()]])
def test_a_document_that_is_not_an_object(data: object) -> None:
    assert refusal(data).errors == [("document", "must be a JSON object")]


def test_every_problem_is_reported_up_to_a_limit() -> None:
    data = export()
    data["tasks"] = [copy.deepcopy(data["tasks"][0]) | {"title": 5} for _ in range(200)]
    error = refusal(data)
    assert len(error.errors) == MAX_ERRORS
    assert error.detail.endswith("tasks.0.title: Not a valid string. (and 199 more)")


def test_deep_nesting_is_not_followed() -> None:
    """Values nested far deeper than the shape are refused at the first level that is not
    what the shape says, without recursing into them (no RecursionError)."""
    deep: Any = "bottom"
    for _ in range(100_000):
        deep = [deep]
    for path in ("tasks.0.labels", "tasks.0.title", "project.evil", "tasks.0.checklist.0"):
        error = refusal(changed(path, deep))
        assert error.errors[0][0].startswith(path)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


def paths(node: Any, prefix: str = "") -> list[str]:
    """Every ``a.0.b`` path inside a JSON value."""
    items = (
        node.items()
        if isinstance(node, dict)
        else enumerate(node)
        if isinstance(node, list)
        else []
    )
    out = []
    for key, value in items:
        path = f"{prefix}.{key}" if prefix else str(key)
        out += [path, *paths(value, path)]
    return out


ALL_PATHS = paths(export())


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(ALL_PATHS), JSON_VALUES | st.just(DELETE))
def test_any_value_anywhere_is_read_or_refused(path: str, value: Any) -> None:
    """Whatever replaces (or removes) any part of an export, the answer is a plan or a
    ValidationFailed naming fields: never another exception."""
    errors: list[tuple[str, str]] = []
    try:
        plan_from_json(changed(path, value))
    except ValidationFailed as error:
        errors = error.errors or [("", "no errors listed")]
    assert all(name and isinstance(name, str) and isinstance(text, str) for name, text in errors)
