"""The stored shapes of the main documents, as the code reads and writes them.

``Document`` (store/document.py) is any document; these TypedDicts name the fields of the
ones most code touches, so a field's type is known where it is read (no ``str(doc[...])``
casts) and a typo in a field name is a type error. Fields every stored document has are
``Required``; the rest may be missing from documents written by older versions (the
migrations fill what must be there). Ids are ObjectId hex strings; times are UTC
``datetime``s; ``*_ms`` / ``*_sort`` fields are sort shadows (store/tasks.py,
store/projects.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Required, TypedDict


class PhaseDoc(TypedDict, total=False):
    """A phase, embedded in its project's ``phases`` (ordered by ``position``)."""

    id: Required[str]
    name: Required[str]
    estimate_hours: float | None
    position: int


class ProjectDoc(TypedDict, total=False):
    """``projects``: a project with its phases (store/projects.py for the counters)."""

    _id: Required[str]
    workspace_id: Required[str]
    key: Required[str]
    name: Required[str]
    name_sort: str
    description: str
    status: str
    start_date: str | None
    target_date: str | None
    target_users: Any
    project_type: Any
    phases: list[PhaseDoc]
    version: int
    phases_version: int
    graph_version: int
    graph_pending: list[dict[str, Any]]
    task_seq: int
    task_count: int
    created_by: str | None
    created_at: datetime
    updated_at: datetime
    updated_ms: int
    created_ms: int
    plan: dict[str, Any]
    calendar: CalendarDoc | None
    scheduling_mode: str
    baseline_count: int
    forecast_days: dict[str, str]


class CalendarDoc(TypedDict, total=False):
    """A working calendar (domain/calendar.py) as stored on a workspace or a project."""

    weekdays: list[int]
    hours_per_day: float
    holidays: list[str]
    timezone: str
    day_start: str


class LinkDoc(TypedDict):
    """A dependency's type and lag (domain/links.py), kept per predecessor id in
    ``TaskDoc.link_types``; a predecessor without an entry is FS with no lag."""

    type: str
    lag: float
    lag_unit: str


class TaskDoc(TypedDict, total=False):
    """``tasks``: a task, its dependency edges both ways and its sort shadows."""

    _id: Required[str]
    workspace_id: Required[str]
    project_id: Required[str]
    seq: int
    key: Required[str]
    title: Required[str]
    description: str
    checklist: list[dict[str, Any]]
    status: Required[str]
    complexity: str | None
    estimate_hours: float | None
    phase_id: str | None
    assignee_id: str | None
    labels: list[str]
    due_date: str | None
    start_date: str | None
    priority: str | None
    milestone: bool
    blocked_by: list[str]
    link_types: dict[str, LinkDoc]
    blocks: list[str]
    plan_ref: str
    created_by: str | None
    created_at: datetime
    updated_at: datetime
    version: int
    attachment_count: int
    due_sort: str
    updated_ms: int
    created_ms: int
    estimate_sort: float
    title_sort: str


class TimeShadows(TypedDict, total=False):
    """Times as sortable integer milliseconds (the dev server compares datetimes only to
    the second, docs/devstack.md)."""

    created_ms: int
    updated_ms: int


class TaskShadows(TimeShadows, total=False):
    """A task's sort shadows: never null, prefixed so no value is compared as a date."""

    due_sort: str
    estimate_sort: float
    title_sort: str


class MembershipDoc(TypedDict, total=False):
    """``memberships``: a user's role in a workspace."""

    _id: Required[str]
    workspace_id: Required[str]
    user_id: Required[str]
    role: Required[str]
    created_at: datetime
    updated_at: datetime


class SessionDoc(TypedDict, total=False):
    """``sessions``: one login (a refresh-token family)."""

    _id: Required[str]
    user_id: Required[str]
    created_at: datetime
    last_used_at: datetime
    revoked: bool
    revoked_at: datetime
    revoked_reason: str
    user_agent: str
    ip: str | None
