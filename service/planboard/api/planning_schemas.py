"""Request and response schemas of projects, phases, tasks, dependencies and comments.

Every body and query is strict (unknown fields rejected), every string and list is
bounded, numbers are finite and in range, and JSON types are not coerced (``"5"`` is
not an estimate, ``1`` is not a boolean).
"""

from __future__ import annotations

import math
import re
from typing import Any

import marshmallow as m
from marshmallow import fields, validate, validates_schema

from planboard.api.schemas import Strict, Trimmed, name_field
from planboard.domain.links import MAX_LAG, LagUnit, LinkType
from planboard.domain.model import Complexity, Priority, TaskStatus
from planboard.domain.plan import MAX_ESTIMATE_HOURS
from planboard.domain.text import (
    MAX_CHECKLIST,
    MAX_PHASE_NAME,
    MAX_PROJECT_DESCRIPTION,
    MAX_PROJECT_NAME,
    MAX_TITLE,
    control_problem,
)
from planboard.services.exports import DIAGRAMS, EXPORT_FORMATS
from planboard.services.projects import PROJECT_SORTS, PROJECT_STATUSES
from planboard.services.scheduling import (
    DEFAULT_FORECAST_RUNS,
    MAX_FORECAST_RUNS,
    MAX_HOLIDAYS,
    SCHEDULING_MODES,
)
from planboard.services.tasks import MAX_BATCH, PLAN_REF_RE, TASK_SORTS

MAX_DESCRIPTION = 20_000
MAX_COMMENT = 10_000
MAX_LABELS = 20
MAX_LABEL = 50

TASK_STATUSES = [s.value for s in TaskStatus]
COMPLEXITIES = [c.value for c in Complexity]
PRIORITIES = [p.value for p in Priority]
LINK_TYPES = [t.value for t in LinkType]
LAG_UNITS = [u.value for u in LagUnit]
# Fields a task representation has (``?fields=`` picks among them; ``id`` is always sent).
TASK_OUT_FIELDS = (
    "id",
    "key",
    "project_id",
    "workspace_id",
    "plan_ref",
    "title",
    "description",
    "checklist",
    "status",
    "complexity",
    "estimate_hours",
    "phase",
    "phase_id",
    "assignee_id",
    "labels",
    "due_date",
    "start_date",
    "priority",
    "milestone",
    "blocked_by",
    "dependencies",
    "blocks",
    "blocked_by_open",
    "ready",
    "version",
    "created_at",
    "updated_at",
)

_LEADING_BLANK_LINES = re.compile(r"^(?:[ \t]*\n)+")


class MarkdownText(fields.String):
    """Multi-line text: newlines and tabs allowed, other control characters refused (the
    multi-line rule of domain/text.py)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = str(super()._deserialize(value, attr, data, **kwargs))
        problem = control_problem(text, multiline=True)
        if problem is not None:
            raise m.ValidationError(problem)
        # blank lines around the text go; the first line keeps its indentation (Markdown)
        return _LEADING_BLANK_LINES.sub("", text.replace("\r\n", "\n")).rstrip()


class StrictFloat(fields.Float):
    """A JSON number (not a numeric string, not a boolean), finite."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(allow_nan=False, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise m.ValidationError("must be a number")
        number = super()._deserialize(value, attr, data, **kwargs)
        if number is None or not math.isfinite(number):
            raise m.ValidationError("must be a finite number")
        return number


class StrictBool(fields.Boolean):
    """Only JSON ``true`` / ``false``."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise m.ValidationError("must be true or false")
        return value


class IsoDate(fields.Date):
    """A calendar date ``YYYY-MM-DD``, kept as that string."""

    def _deserialize(  # type: ignore[override]
        self, value: Any, attr: str | None, data: Any, **kwargs: Any
    ) -> str:
        if not isinstance(value, str) or len(value) != 10:
            raise m.ValidationError("must be a date such as 2026-10-31")
        day = super()._deserialize(value, attr, data, **kwargs)
        return day.isoformat()


class CommaList(fields.List):
    """A repeatable query parameter whose values may also be comma-separated lists."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[Any]:
        items = value if isinstance(value, list) else [value]
        if not all(isinstance(item, str) for item in items):
            raise m.ValidationError("must be a list of strings")
        if any(not item.strip(" ,") for item in items):  # `?fields=`: say so, don't ignore it
            raise m.ValidationError("must not be empty")
        split = [part.strip() for item in items for part in item.split(",") if part.strip()]
        if len(split) > 50:
            raise m.ValidationError("at most 50 values")
        return list(super()._deserialize(split, attr, data, **kwargs))


def estimate_field(**kwargs: Any) -> fields.Field:
    return StrictFloat(
        validate=validate.Range(min=0, max=MAX_ESTIMATE_HOURS),
        metadata={"description": f"hours, 0 to {MAX_ESTIMATE_HOURS:g}"},
        **kwargs,
    )


def version_field() -> fields.Field:
    return fields.Integer(
        strict=True,
        validate=validate.Range(min=1, max=2**31),
        metadata={"description": "the version you read; a stale one is a 412"},
    )


class NoQuery(Strict):
    """Endpoints without query parameters still refuse unknown ones."""


class PageParams(Strict):
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    cursor = fields.String(validate=validate.Length(min=1, max=500))


# --- calendars and scheduling ------------------------------------------------------------


class CalendarBody(Strict):
    """A working calendar (domain/calendar.py); missing fields take the defaults."""

    weekdays = fields.List(
        fields.Integer(strict=True, validate=validate.Range(min=0, max=6)),
        validate=validate.Length(min=1, max=7),
        metadata={"description": "working weekdays, 0 = Monday … 6 = Sunday; default 0-4"},
    )
    hours_per_day = StrictFloat(
        validate=validate.Range(min=0, max=24, min_inclusive=False),
        metadata={"description": "working hours per day, more than 0, at most 24; default 8"},
    )
    holidays = fields.List(
        IsoDate(),
        validate=validate.Length(max=MAX_HOLIDAYS),
        metadata={"description": f"dates without work, at most {MAX_HOLIDAYS}"},
    )
    timezone = fields.String(
        validate=validate.Length(min=1, max=64),
        metadata={"description": "an IANA time zone (Europe/Berlin); default UTC"},
    )
    day_start = fields.String(
        allow_none=True,
        validate=validate.Regexp(r"^([01][0-9]|2[0-3]):[0-5][0-9]$", error="HH:MM, such as 08:30"),
        metadata={"description": "local start of the working window; default 09:00"},
    )


class CalendarOut(m.Schema):
    weekdays = fields.List(fields.Integer())
    hours_per_day = fields.Float()
    holidays = fields.List(fields.String())
    timezone = fields.String()
    day_start = fields.String(allow_none=True)


def calendar_field() -> fields.Field:
    return fields.Nested(
        CalendarBody,
        allow_none=True,
        metadata={"description": "the working calendar; null for the default (or inherited)"},
    )


def mode_field() -> fields.Field:
    return fields.String(
        validate=validate.OneOf(SCHEDULING_MODES),
        metadata={"description": "automatic (dates follow dependencies) or manual (default)"},
    )


class WorkspacePatch(Strict):
    name = name_field()
    calendar = calendar_field()

    @validates_schema
    def _something(self, data: dict[str, Any], **kwargs: Any) -> None:
        if not data:
            raise m.ValidationError("give name or calendar", "name")


# --- projects ---------------------------------------------------------------------------


class ProjectBody(Strict):
    name = name_field(MAX_PROJECT_NAME, required=True)
    key = fields.String(
        validate=validate.Length(min=1, max=20),
        metadata={"description": "2-10 letters/digits, upper-cased; derived from the name"},
    )
    description = MarkdownText(validate=validate.Length(max=MAX_PROJECT_DESCRIPTION))
    status = fields.String(validate=validate.OneOf(PROJECT_STATUSES))
    start_date = IsoDate(allow_none=True)
    target_date = IsoDate(allow_none=True)
    calendar = calendar_field()
    scheduling_mode = mode_field()


class ProjectPatch(Strict):
    name = name_field(MAX_PROJECT_NAME)
    description = MarkdownText(validate=validate.Length(max=MAX_PROJECT_DESCRIPTION))
    status = fields.String(validate=validate.OneOf(PROJECT_STATUSES))
    start_date = IsoDate(allow_none=True)
    target_date = IsoDate(allow_none=True)
    calendar = calendar_field()
    scheduling_mode = mode_field()
    version = version_field()


PROJECT_SORT_VALUES = [s for name in PROJECT_SORTS for s in (name, f"-{name}")]


class ProjectListQuery(PageParams):
    status = CommaList(fields.String(validate=validate.OneOf(PROJECT_STATUSES)))
    sort = fields.String(load_default="-created_at", validate=validate.OneOf(PROJECT_SORT_VALUES))


class ImportQuery(Strict):
    key = fields.String(validate=validate.Length(min=1, max=20))


class ExportOptions(Strict):
    """``diagram``, which picture ``format=mermaid`` draws (the export query and job body)."""

    diagram = fields.String(
        validate=validate.OneOf(DIAGRAMS),
        metadata={"description": "format=mermaid only: graph (dependencies, the default) or gantt"},
    )

    @validates_schema
    def _diagram_needs_mermaid(self, data: dict[str, Any], **kwargs: Any) -> None:
        if "diagram" in data and data.get("format") != "mermaid":
            raise m.ValidationError("only with format=mermaid", "diagram")


class ExportQuery(ExportOptions):
    format = fields.String(load_default="markdown", validate=validate.OneOf(EXPORT_FORMATS))


class PhaseOut(m.Schema):
    id = fields.String(required=True)
    name = fields.String(required=True)
    estimate_hours = fields.Float(allow_none=True)
    position = fields.Integer()
    task_count = fields.Integer()


class ProjectOut(m.Schema):
    id = fields.String(required=True)
    key = fields.String(required=True)
    name = fields.String(required=True)
    description = fields.String()
    workspace_id = fields.String(required=True)
    status = fields.String()
    start_date = fields.String(allow_none=True)
    target_date = fields.String(allow_none=True)
    calendar = fields.Nested(CalendarOut, allow_none=True)
    scheduling_mode = fields.String()
    target_users = fields.String(allow_none=True)
    project_type = fields.String(allow_none=True)
    phases = fields.List(fields.Nested(PhaseOut))
    task_count = fields.Integer()
    created_by = fields.String(allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    version = fields.Integer()


class ProjectListOut(m.Schema):
    items = fields.List(fields.Nested(ProjectOut))
    next_cursor = fields.String(allow_none=True)


# --- phases -----------------------------------------------------------------------------


class PhaseBody(Strict):
    name = name_field(MAX_PHASE_NAME, required=True)
    estimate_hours = estimate_field(allow_none=True)
    position = fields.Integer(strict=True, validate=validate.Range(min=0, max=1000))


class PhasePatch(Strict):
    name = name_field(MAX_PHASE_NAME)
    estimate_hours = estimate_field(allow_none=True)
    position = fields.Integer(strict=True, validate=validate.Range(min=0, max=1000))


class PhaseDeleteQuery(Strict):
    move_to = fields.String(validate=validate.Length(min=1, max=100))


class PhaseListOut(m.Schema):
    items = fields.List(fields.Nested(PhaseOut))


# --- schedule ---------------------------------------------------------------------------


class ScheduleCalendarOut(CalendarOut):
    source = fields.String(metadata={"description": "project, workspace or default"})


class ScheduledTaskRefOut(m.Schema):
    task_id = fields.String()
    key = fields.String()
    plan_ref = fields.String(allow_none=True)


class ScheduledTaskOut(ScheduledTaskRefOut):
    early_start = fields.DateTime()
    early_finish = fields.DateTime()
    late_start = fields.DateTime()
    late_finish = fields.DateTime()
    duration_hours = fields.Float(metadata={"description": "working hours"})
    total_slack_hours = fields.Float()
    free_slack_hours = fields.Float()
    critical = fields.Boolean()


class ViolationOut(ScheduledTaskRefOut):
    predecessor_id = fields.String()
    predecessor_key = fields.String()
    type = fields.String()
    lag_hours = fields.Float()
    shortfall_hours = fields.Float()


class ScheduleOut(m.Schema):
    project_id = fields.String()
    mode = fields.String()
    calendar = fields.Nested(ScheduleCalendarOut)
    project_start = fields.DateTime()
    project_finish = fields.DateTime()
    duration_hours = fields.Float()
    critical_path = fields.List(fields.Nested(ScheduledTaskRefOut))
    tasks = fields.List(fields.Nested(ScheduledTaskOut))
    violations = fields.List(fields.Nested(ViolationOut))


class TaskScheduleOut(ScheduledTaskOut):
    project_id = fields.String()
    mode = fields.String(metadata={"description": "the project's scheduling mode"})
    project_finish = fields.DateTime()
    on_critical_path = fields.Boolean()
    violations = fields.List(
        fields.Nested(ViolationOut),
        metadata={"description": "manual mode: links into this task that its dates break"},
    )


class ForecastQuery(Strict):
    runs = fields.Integer(
        strict=False,
        load_default=DEFAULT_FORECAST_RUNS,
        validate=validate.Range(min=100, max=MAX_FORECAST_RUNS),
        metadata={"description": f"simulated runs, 100 to {MAX_FORECAST_RUNS}"},
    )
    seed = fields.Integer(
        strict=False,
        load_default=0,
        validate=validate.Range(min=0, max=2**32 - 1),
        metadata={"description": "the same seed gives the same forecast"},
    )


class PercentilesOut(m.Schema):
    p50 = fields.DateTime()
    p85 = fields.DateTime()
    p95 = fields.DateTime()
    p50_hours = fields.Float()
    p85_hours = fields.Float()
    p95_hours = fields.Float()


class PhaseForecastOut(PercentilesOut):
    phase_id = fields.String(allow_none=True)
    name = fields.String(allow_none=True)


class CriticalityOut(ScheduledTaskRefOut):
    index = fields.Float(metadata={"description": "share of runs in which it was critical"})


class CalibrationOut(m.Schema):
    calibrated = fields.Boolean(
        metadata={"description": "whether durations were drawn from history, not the defaults"}
    )
    source = fields.String(
        metadata={
            "description": "project or workspace (whose done tasks calibrated it), "
            "or default (fewer than 20 usable done tasks)"
        }
    )
    samples = fields.Integer(
        metadata={"description": "done tasks with an estimate and a timed in_progress → done"}
    )


class ForecastOut(m.Schema):
    project_id = fields.String()
    runs = fields.Integer()
    seed = fields.Integer()
    mode = fields.String()
    calendar_source = fields.String()
    calibration = fields.Nested(CalibrationOut)
    project_start = fields.DateTime()
    project = fields.Nested(PercentilesOut)
    phases = fields.List(fields.Nested(PhaseForecastOut))
    criticality = fields.List(fields.Nested(CriticalityOut))


class BaselineBody(Strict):
    name = name_field(MAX_PHASE_NAME)


class BaselineOut(m.Schema):
    id = fields.String()
    project_id = fields.String()
    name = fields.String()
    mode = fields.String()
    project_start = fields.DateTime()
    project_finish = fields.DateTime()
    task_count = fields.Integer()
    created_by = fields.String(allow_none=True)
    created_at = fields.DateTime()


class BaselineListOut(m.Schema):
    items = fields.List(fields.Nested(BaselineOut))
    next_cursor = fields.String(allow_none=True)


class TaskChangeOut(ScheduledTaskRefOut):
    baseline_start = fields.DateTime()
    baseline_finish = fields.DateTime()
    current_start = fields.DateTime()
    current_finish = fields.DateTime()
    start_change_hours = fields.Float(metadata={"description": "working hours, later > 0"})
    finish_change_hours = fields.Float(metadata={"description": "working hours, later > 0"})
    finish_change_seconds = fields.Float(metadata={"description": "calendar time"})


class BaselineCompareOut(m.Schema):
    baseline = fields.Nested(BaselineOut)
    baseline_finish = fields.DateTime()
    current_finish = fields.DateTime()
    finish_change_hours = fields.Float()
    finish_change_seconds = fields.Float()
    slipped = fields.List(fields.Nested(TaskChangeOut))
    pulled_in = fields.List(fields.Nested(TaskChangeOut))
    unchanged = fields.Integer()
    new_tasks = fields.List(fields.String())
    removed_tasks = fields.List(fields.String())


# --- progress ---------------------------------------------------------------------------


class PhaseProgressOut(m.Schema):
    name = fields.String()
    total = fields.Integer()
    completed = fields.Integer()
    percent = fields.Integer()


class FocusOut(m.Schema):
    id = fields.String()
    key = fields.String()
    plan_ref = fields.String(allow_none=True)
    title = fields.String()


class ProgressOut(m.Schema):
    total = fields.Integer()
    completed = fields.Integer()
    in_progress = fields.Integer()
    blocked = fields.Integer()
    percent = fields.Integer()
    remaining_estimate_hours = fields.Float()
    critical_path = fields.List(fields.String())
    critical_path_hours = fields.Float()
    phases = fields.List(fields.Nested(PhaseProgressOut))
    current_focus = fields.List(fields.Nested(FocusOut))


# --- tasks ------------------------------------------------------------------------------


class ChecklistItemBody(Strict):
    text = Trimmed(required=True, validate=validate.Length(min=1, max=MAX_TITLE))
    done = StrictBool(load_default=False)


def _task_fields(required_title: bool) -> dict[str, fields.Field]:
    return {
        "title": Trimmed(required=required_title, validate=validate.Length(min=1, max=MAX_TITLE)),
        "description": MarkdownText(validate=validate.Length(max=MAX_DESCRIPTION)),
        "checklist": fields.List(
            fields.Nested(ChecklistItemBody), validate=validate.Length(max=MAX_CHECKLIST)
        ),
        "status": fields.String(validate=validate.OneOf(TASK_STATUSES)),
        "complexity": fields.String(allow_none=True, validate=validate.OneOf(COMPLEXITIES)),
        "estimate_hours": estimate_field(allow_none=True),
        "assignee_id": fields.String(allow_none=True, validate=validate.Length(min=1, max=100)),
        "labels": fields.List(
            Trimmed(validate=validate.Length(min=1, max=MAX_LABEL)),
            validate=validate.Length(max=MAX_LABELS),
        ),
        "due_date": IsoDate(
            allow_none=True, metadata={"description": "the day it must be finished by"}
        ),
        "start_date": IsoDate(
            allow_none=True,
            metadata={"description": "the first day of work; on or before due_date"},
        ),
        "priority": fields.String(allow_none=True, validate=validate.OneOf(PRIORITIES)),
        "milestone": StrictBool(
            metadata={"description": "a zero-duration task: no estimate but 0, one day"}
        ),
        "phase": fields.String(
            allow_none=True,
            validate=validate.Length(min=1, max=100),
            metadata={"description": "a phase id or its exact name; null for none"},
        ),
        "plan_ref": fields.String(
            allow_none=True,
            validate=validate.Regexp(
                PLAN_REF_RE, error="1-50 letters, digits, '.', '_' or '-' (such as T2.1)"
            ),
        ),
    }


TaskBody = Strict.from_dict(_task_fields(True), name="TaskBody")
TaskPatch = Strict.from_dict({**_task_fields(False), "version": version_field()}, name="TaskPatch")


class BulkCreateBody(Strict):
    tasks = fields.List(
        fields.Nested(TaskBody), required=True, validate=validate.Length(min=1, max=MAX_BATCH)
    )


class BulkStatusBody(Strict):
    task_ids = fields.List(
        fields.String(validate=validate.Length(min=1, max=100)),
        validate=validate.Length(min=1, max=MAX_BATCH),
    )
    keys = fields.List(
        fields.String(validate=validate.Length(min=1, max=30)),
        validate=validate.Length(min=1, max=MAX_BATCH),
    )
    status = fields.String(required=True, validate=validate.OneOf(TASK_STATUSES))

    @validates_schema
    def _some_tasks(self, data: dict[str, Any], **kwargs: Any) -> None:
        count = len(data.get("task_ids") or []) + len(data.get("keys") or [])
        if count == 0:
            raise m.ValidationError("give task_ids or keys", "task_ids")
        if count > MAX_BATCH:
            raise m.ValidationError(f"at most {MAX_BATCH} tasks per call", "task_ids")


TASK_SORT_VALUES = [s for name in TASK_SORTS for s in (name, f"-{name}")]


def sparse_fields() -> fields.Field:
    return CommaList(
        fields.String(validate=validate.OneOf(TASK_OUT_FIELDS)),
        data_key="fields",
        metadata={"description": "comma-separated task fields to return (id always)"},
    )


class FieldsQuery(Strict):
    fields_ = sparse_fields()


class TaskListQuery(PageParams):
    status = CommaList(fields.String(validate=validate.OneOf(TASK_STATUSES)))
    phase = fields.String(validate=validate.Length(min=1, max=100))
    assignee = fields.String(
        validate=validate.Length(min=1, max=100),
        metadata={"description": "a user id, or `me`"},
    )
    label = CommaList(Trimmed(validate=validate.Length(min=1, max=MAX_LABEL)))
    due_before = IsoDate(metadata={"description": "due on or before"})
    due_after = IsoDate(metadata={"description": "due on or after"})
    ready = fields.Boolean()
    sort = fields.String(load_default="key", validate=validate.OneOf(TASK_SORT_VALUES))
    fields_ = sparse_fields()


class ChecklistItemOut(m.Schema):
    text = fields.String()
    done = fields.Boolean()


class LinkOut(m.Schema):
    task_id = fields.String()
    type = fields.String(metadata={"description": "FS, SS, FF or SF"})
    lag = fields.Float(metadata={"description": "signed; negative is a lead"})
    lag_unit = fields.String(metadata={"description": "h (working hours) or d (working days)"})


class TaskOut(m.Schema):
    id = fields.String(required=True)
    key = fields.String()
    project_id = fields.String()
    workspace_id = fields.String()
    plan_ref = fields.String(allow_none=True)
    title = fields.String()
    description = fields.String()
    checklist = fields.List(fields.Nested(ChecklistItemOut))
    status = fields.String()
    complexity = fields.String(allow_none=True)
    estimate_hours = fields.Float(allow_none=True)
    phase = fields.String(allow_none=True, metadata={"description": "the phase's name"})
    phase_id = fields.String(allow_none=True)
    assignee_id = fields.String(allow_none=True)
    labels = fields.List(fields.String())
    due_date = fields.String(allow_none=True)
    start_date = fields.String(allow_none=True)
    priority = fields.String(allow_none=True)
    milestone = fields.Boolean()
    blocked_by = fields.List(fields.String())
    dependencies = fields.List(
        fields.Nested(LinkOut),
        metadata={"description": "the blocked_by tasks with their link type and lag, in order"},
    )
    blocks = fields.List(fields.String())
    blocked_by_open = fields.List(fields.String())
    ready = fields.Boolean()
    version = fields.Integer()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class TaskListOut(m.Schema):
    items = fields.List(fields.Nested(TaskOut))
    next_cursor = fields.String(allow_none=True)


class TaskItemsOut(m.Schema):
    items = fields.List(fields.Nested(TaskOut))


# --- dependencies -----------------------------------------------------------------------


def _link_fields() -> dict[str, fields.Field]:
    return {
        "type": fields.String(
            validate=validate.OneOf(LINK_TYPES),
            metadata={"description": "FS (default), SS, FF or SF"},
        ),
        "lag": StrictFloat(
            validate=validate.Range(min=-MAX_LAG, max=MAX_LAG),
            metadata={"description": "signed (negative: a lead); default 0"},
        ),
        "lag_unit": fields.String(
            validate=validate.OneOf(LAG_UNITS),
            metadata={"description": "h (working hours, default) or d (working days)"},
        ),
    }


DependencyBody = Strict.from_dict(
    {
        "blocked_by": fields.String(
            required=True,
            validate=validate.Length(min=1, max=100),
            metadata={"description": "id or key of a task of the same project"},
        ),
        **_link_fields(),
    },
    name="DependencyBody",
)


class _LinkPatch(Strict):
    @validates_schema
    def _something(self, data: dict[str, Any], **kwargs: Any) -> None:
        if not set(data) - {"version"}:
            raise m.ValidationError("give type, lag or lag_unit", "type")


DependencyPatch = _LinkPatch.from_dict(
    {**_link_fields(), "version": version_field()}, name="DependencyPatch"
)


class TaskSummaryOut(m.Schema):
    id = fields.String()
    key = fields.String()
    title = fields.String()
    status = fields.String()


class LinkedTaskOut(TaskSummaryOut):
    type = fields.String()
    lag = fields.Float()
    lag_unit = fields.String()


class DependenciesOut(m.Schema):
    blocked_by = fields.List(fields.Nested(LinkedTaskOut))
    blocks = fields.List(fields.Nested(TaskSummaryOut))
    blocked_by_open = fields.List(fields.String())
    ready = fields.Boolean()


# --- comments and activity --------------------------------------------------------------


class CommentBody(Strict):
    body = MarkdownText(required=True, validate=validate.Length(min=1, max=MAX_COMMENT))


class CommentPatch(Strict):
    body = MarkdownText(required=True, validate=validate.Length(min=1, max=MAX_COMMENT))
    version = version_field()


class CommentOut(m.Schema):
    id = fields.String(required=True)
    task_id = fields.String()
    project_id = fields.String()
    author_id = fields.String(allow_none=True)
    body = fields.String()
    mentions = fields.List(fields.String())
    edited = fields.Boolean()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    version = fields.Integer()


class CommentListOut(m.Schema):
    items = fields.List(fields.Nested(CommentOut))
    next_cursor = fields.String(allow_none=True)


class ChangeOut(m.Schema):
    field = fields.String()
    before = fields.Raw(allow_none=True)
    after = fields.Raw(allow_none=True)


class ActivityOut(m.Schema):
    id = fields.String()
    at = fields.DateTime()
    actor_id = fields.String(allow_none=True)
    entity = fields.String()
    entity_id = fields.String()
    action = fields.String()
    task_id = fields.String(allow_none=True)
    task_key = fields.String(allow_none=True)
    project_id = fields.String()
    changes = fields.List(fields.Nested(ChangeOut))
    data = fields.Dict()


class ActivityListOut(m.Schema):
    items = fields.List(fields.Nested(ActivityOut))
    next_cursor = fields.String(allow_none=True)
