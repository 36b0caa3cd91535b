"""Markdown plan documents (the ``plan-template.md`` format): parse and render.

Only the Overview and "Tasks & Implementation Plan" sections carry data; every
other section, anything inside code fences and HTML comments (``<!-- ... -->``, on one
line or across several, outside code spans) are ignored on import. On export the
Overview, the tasks and a filled-in "Progress Tracking" section are written, so that
``parse_plan(render_plan(doc)) == doc`` (``line`` takes no part in equality): free text
that holds ``<!--`` is written as ``<\\!--`` (one more backslash before the ``!`` of any
``<\\…!--``; the parser takes one away), so no text of a project ever reads as a comment.

Titles, names and checklist items follow the one-line text rule of domain/text.py, the
same the JSON API applies: a plan holding a control character (or a title too long) is
refused, naming the line and the task, rather than stored.

Placeholders such as ``{{PHASE1_ESTIMATE}}`` mean "not set" in typed fields
(status, complexity, estimates, dependencies, priority, dates, milestone) and are kept
verbatim in free text.

Scheduling bullets (docs/scheduling.md, "Plan documents"), all optional and written on
export only when set, so a plan without them exports byte for byte as before::

    - **Priority**: High                 Low, Medium, High or Urgent
    - **Milestone**: yes                 yes / no; a milestone's estimate is 0 or unset
    - **Start**: 2026-03-02              ISO calendar dates (YYYY-MM-DD); start <= due
    - **Due**: 2026-03-06
    - **Dependencies**: T1.1 (SS+2d), T1.2     typed links (domain/links.py); T1.2 is FS
"""

from __future__ import annotations

import math
import re
from bisect import bisect_left
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

from .dag import assert_acyclic
from .errors import CycleDetected, PlanSyntaxError, describe_cycle
from .links import Dependency, DependencySyntaxError, format_dependencies, parse_dependency
from .model import (
    ChecklistItem,
    Complexity,
    PlanDocument,
    PlanPhase,
    PlanTask,
    Priority,
    TaskNode,
    TaskStatus,
)
from .progress import Progress, compute_progress, progress_bar
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

MAX_PLAN_BYTES = 2 * 1024 * 1024
MAX_PLAN_TASKS = 5000
MAX_ESTIMATE_HOURS = 10_000.0
MAX_PLAN_REF = 50  # the API's plan_ref rule: 1-50 letters, digits, '.', '_' or '-'

TASKS_HEADING = "Tasks & Implementation Plan"

STATUS_WORDS: dict[TaskStatus, str] = {
    TaskStatus.TODO: "TODO",
    TaskStatus.IN_PROGRESS: "IN_PROGRESS",
    TaskStatus.BLOCKED: "BLOCKED",
    TaskStatus.DONE: "DONE",
    TaskStatus.CANCELLED: "CANCELLED",
}
_STATUS_BY_WORD = {word: status for status, word in STATUS_WORDS.items()} | {
    "CANCELED": TaskStatus.CANCELLED
}
_COMPLEXITY_WORDS = {c: c.value.capitalize() for c in Complexity}
_PRIORITY_WORDS = {p: p.value.capitalize() for p in Priority}
_MILESTONE_WORDS = {"yes": True, "true": True, "no": False, "false": False}

_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*))?$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
# Linear on hostile lines: no two ``\s*`` (or a lazy group and a ``\s*``) compete for the
# same spaces; the key keeps its trailing spaces, which _field_key drops.
_FIELD = re.compile(r"^\*\*(?P<key>[^*]+?)(?::\*\*|\*\*\s*:)\s*(?P<value>.*)$")
_BULLET = re.compile(r"^(?P<indent>[ \t]*)[-*+][ \t]+(?P<rest>.*)$")
_CHECKBOX = re.compile(r"\[(?P<mark>[ xX])\](?:\s+|$)")
_TASK_HEADING = re.compile(r"^(?P<ref>[A-Za-z0-9][A-Za-z0-9._-]*)\s*:(?P<title>.*)$")
_ESTIMATE = re.compile(r"^(?P<number>\S+?)\s*(?:h|hrs?|hours?)?\.?$", re.IGNORECASE)
_PLACEHOLDER = re.compile(r"^\{\{[^{}]*\}\}$")
_ISO_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_UNSET_WORDS = frozenset({"", "none", "n/a", "na", "-", "tbd", "?", "unknown"})
_COMMENT_OPEN = "<!--"
_COMMENT_CLOSE = "-->"
_CODE_OR_COMMENT = re.compile(r"`+|<!--")
_BACKTICKS = re.compile(r"`+")
_ESCAPED_OPEN = re.compile(r"<(\\*)!--")


def escape_text(text: str) -> str:
    """Free text as written on export: one more backslash before the ``!`` of every
    ``<!--`` / ``<\\!--`` / …, so that it never opens a comment (CommonMark reads ``\\!``
    as a literal ``!`` too)."""
    return _ESCAPED_OPEN.sub(lambda m: f"<{m[1]}\\!--", text)


def unescape_text(text: str) -> str:
    """The inverse of :func:`escape_text`, applied once to free text read from a plan."""
    return _ESCAPED_OPEN.sub(lambda m: f"<{m[1][1:]}!--" if m[1] else m[0], text)


# --------------------------------------------------------------------------- parsing


@dataclass
class _TaskDraft:
    """A task while its bullet lines are still being read."""

    ref: str
    title: str
    line: int
    status: TaskStatus = TaskStatus.TODO
    complexity: Complexity | None = None
    estimate: float | None = None
    links: tuple[Dependency, ...] = ()
    priority: Priority | None = None
    start: date | None = None
    due: date | None = None
    milestone: bool = False
    checklist: list[ChecklistItem] = field(default_factory=list)
    seen: dict[str, int] = field(default_factory=dict)  # field -> its line
    in_description: bool = False

    @property
    def dependencies_line(self) -> int:
        return self.seen.get("dependencies", self.line)

    def check(self) -> None:
        """Rules between fields: a start on or before the due date; a milestone takes no
        time (estimate 0 or unset) and, dated at both ends, starts on its due date."""
        if self.start is not None and self.due is not None and self.start > self.due:
            raise PlanSyntaxError(
                max(self.seen["start"], self.seen["due"]),
                f"task {self.ref} starts on {self.start.isoformat()}, after its due date "
                f"{self.due.isoformat()}",
            )
        if not self.milestone:
            return
        if self.estimate:
            raise PlanSyntaxError(
                self.seen["milestone"],
                f"task {self.ref} is a milestone, which takes no time: its estimate must be "
                f"0 or unset, not {format_hours(self.estimate)}",
            )
        if self.start is not None and self.due is not None and self.start != self.due:
            raise PlanSyntaxError(
                max(self.seen["start"], self.seen["due"]),
                f"task {self.ref} is a milestone, a single day: its start "
                f"{self.start.isoformat()} and due date {self.due.isoformat()} must be the same",
            )

    def build(self) -> PlanTask:
        return PlanTask(
            ref=self.ref,
            title=self.title,
            status=self.status,
            complexity=self.complexity,
            estimate_hours=self.estimate,
            checklist=tuple(self.checklist),
            links=self.links,
            priority=self.priority,
            start=self.start,
            due=self.due,
            milestone=self.milestone,
            line=self.line,
        )


@dataclass
class _PhaseDraft:
    name: str
    estimate: float | None
    tasks: list[_TaskDraft] = field(default_factory=list)


def parse_plan(text: str) -> PlanDocument:
    """Read a Markdown plan; raises PlanSyntaxError naming the offending line."""
    _check_size(text)
    reader = _PlanReader()
    for number, line in _numbered_lines(text):
        reader.feed(number, line)
    return reader.finish()


def _check_size(text: str) -> None:
    """Refuse documents over MAX_PLAN_BYTES (UTF-8) before doing any work."""
    too_big = len(text) > MAX_PLAN_BYTES or (
        len(text) * 4 > MAX_PLAN_BYTES
        and len(text.encode("utf-8", "surrogatepass")) > MAX_PLAN_BYTES
    )
    if too_big:
        raise PlanSyntaxError(1, f"plan is larger than {MAX_PLAN_BYTES // (1024 * 1024)} MiB")


def _numbered_lines(text: str) -> Iterator[tuple[int, str]]:
    """1-based numbered lines; only CR/LF end a line (titles may hold other separators)."""
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    return enumerate(text.split("\n"), start=1)


class _PlanReader:
    """Line-by-line state machine over the sections of a plan."""

    def __init__(self) -> None:
        self.section: str | None = None
        self.fence: str | None = None
        self.comment_line: int | None = None  # where the open HTML comment started
        self.title_name: str | None = None
        self.title_line = 1
        self.overview: dict[str, str] = {}
        self.overview_lines: dict[str, int] = {}
        self.continuing: str | None = None
        self.tasks_line: int | None = None
        self.phases: list[_PhaseDraft] = []
        self.phase_lines: dict[str, int] = {}
        self.task: _TaskDraft | None = None
        self.task_lines: dict[str, int] = {}

    # -- dispatch

    def feed(self, number: int, line: str) -> None:
        if self.fence is None:
            visible = self._uncommented(number, line)
            if visible is None:
                return
            line = visible
        if self._in_fence(line):
            return
        heading = _HEADING.match(line)
        if heading:
            self._heading(number, len(heading[1]), (heading[2] or "").strip())
        elif self.section == "overview":
            self._overview_line(number, line.strip())
        elif self.section == "tasks" and self.task is not None:
            self._task_line(number, line)

    def _uncommented(self, number: int, line: str) -> str | None:
        """The line without its HTML comments (``<!--`` to the next ``-->``, which may be
        lines later; ``<!-- -->`` inside a code span is text). None for a line that held
        nothing but comment: it is skipped as if absent (it does not end a paragraph)."""
        pieces: list[str] = []
        position, hidden = 0, False
        if self.comment_line is not None:
            end = line.find(_COMMENT_CLOSE)
            if end < 0:
                return None
            position, hidden, self.comment_line = end + len(_COMMENT_CLOSE), True, None
        runs = _BacktickRuns(line)
        while True:
            start = _comment_start(line, position, runs)
            if start < 0:
                pieces.append(line[position:])
                break
            pieces.append(line[position:start])
            hidden = True
            # ``<!-->`` and ``<!--->`` are whole (empty) comments, as in CommonMark
            end = line.find(_COMMENT_CLOSE, start + 2)
            if end < 0:
                self.comment_line = number
                break
            position = end + len(_COMMENT_CLOSE)
        visible = "".join(pieces)
        if hidden and not visible.strip():
            return None
        return visible

    def _in_fence(self, line: str) -> bool:
        """Track ``` / ~~~ fences; True for the fence lines and everything between."""
        if self.fence is not None:
            stripped = line.strip()
            if stripped.startswith(self.fence) and not stripped.strip(self.fence[0]):
                self.fence = None
            return True
        opening = _FENCE.match(line)
        if opening:
            self.fence = opening[1]
            self.continuing = None
            return True
        return False

    def _heading(self, number: int, level: int, content: str) -> None:
        self.continuing = None
        if level == 1:
            self._title(number, content)
            self.section, self.task = None, None
        elif level == 2:
            self._section(number, content)
        elif self.section == "tasks" and level == 3:
            self._phase(number, content)
        elif self.section == "tasks" and level == 4:
            self._task_heading(number, content)
        elif self.task is not None:
            self.task.in_description = False

    def _title(self, number: int, content: str) -> None:
        """``# Name - Backend API Project Plan`` gives a fallback project name."""
        if self.title_name is None and content:
            self.title_line = number
            self.title_name = unescape_text(content.rsplit(" - ", 1)[0].strip()) or None

    def _section(self, number: int, content: str) -> None:
        self.task = None
        name = " ".join(content.lower().replace("&", " and ").split())
        if name == "overview":
            self.section = "overview"
        elif name == "tasks and implementation plan":
            self.section = "tasks"
            self.tasks_line = self.tasks_line or number
        else:
            self.section = "other"

    # -- overview

    def _overview_line(self, number: int, stripped: str) -> None:
        match = _FIELD.match(stripped)
        if match:
            key = _field_key(match["key"])
            if key not in self.overview:
                self.overview[key] = match["value"].strip()
                self.overview_lines[key] = number
            self.continuing = key if key == "description" else None
        elif not stripped or stripped.startswith("---"):
            self.continuing = None
        elif self.continuing == "description":
            joined = f"{self.overview['description']} {stripped}"
            self.overview["description"] = joined.strip()

    # -- phases and tasks

    def _phase(self, number: int, content: str) -> None:
        self.task = None
        if not content:
            raise PlanSyntaxError(number, "phase heading has no name")
        raw_name, raw_estimate = split_phase_heading(content)
        name = unescape_text(raw_name)
        problem = line_problem(name, MAX_PHASE_NAME)
        if problem is not None:
            raise PlanSyntaxError(number, f"phase name {problem}")
        if name in self.phase_lines:
            raise PlanSyntaxError(
                number, f"duplicate phase {name!r} (first on line {self.phase_lines[name]})"
            )
        if len(self.phases) >= MAX_PHASES:
            raise PlanSyntaxError(number, f"too many phases: a project holds at most {MAX_PHASES}")
        self.phase_lines[name] = number
        estimate = _parse_estimate(raw_estimate, number, f"phase {name!r}")
        self.phases.append(_PhaseDraft(name, estimate))

    def _task_heading(self, number: int, content: str) -> None:
        match = _TASK_HEADING.match(content)
        if not match:
            raise PlanSyntaxError(
                number, f"task heading {content!r} must look like '#### T1.1: Title'"
            )
        ref, title = match["ref"], unescape_text(match["title"].strip())
        self._check_task_heading(number, ref, title)
        self.task_lines[ref] = number
        self.task = _TaskDraft(ref=ref, title=title, line=number)
        self.phases[-1].tasks.append(self.task)

    def _check_task_heading(self, number: int, ref: str, title: str) -> None:
        if not self.phases:
            raise PlanSyntaxError(
                number, f"task {ref} is outside a phase: add a '### Phase N: Name' heading first"
            )
        if ref in self.task_lines:
            raise PlanSyntaxError(
                number, f"duplicate task ref {ref} (first on line {self.task_lines[ref]})"
            )
        if len(ref) > MAX_PLAN_REF:
            raise PlanSyntaxError(
                number, f"task ref {ref[:20]}… is longer than {MAX_PLAN_REF} characters"
            )
        if not title:
            raise PlanSyntaxError(number, f"task {ref} has no title")
        problem = line_problem(title, MAX_TITLE)
        if problem is not None:
            raise PlanSyntaxError(number, f"task {ref}: the title {problem}")
        if len(self.task_lines) >= MAX_PLAN_TASKS:
            raise PlanSyntaxError(number, f"too many tasks: a plan holds at most {MAX_PLAN_TASKS}")

    def _task_line(self, number: int, line: str) -> None:
        """A bullet under a task: a top-level ``**Field**:`` or an indented checklist item."""
        task = self.task
        assert task is not None
        bullet = _BULLET.match(line)
        if not bullet:
            return
        checked, rest = split_checkbox(bullet["rest"].strip())
        top_level = len(bullet["indent"].expandtabs(4)) < 2
        match = _FIELD.match(rest) if top_level else None
        if match:
            self._task_field(
                number, task, _field_key(match["key"]), match["value"].strip(), checked
            )
        elif task.in_description and rest:
            _add_item(number, task, rest, bool(checked))

    def _task_field(
        self, number: int, task: _TaskDraft, key: str, value: str, checked: bool | None
    ) -> None:
        task.in_description = False
        if key in task.seen:
            raise PlanSyntaxError(number, f"task {task.ref} has a second {key.capitalize()} line")
        if key in _TASK_FIELDS:
            task.seen[key] = number
        if key == "status":
            task.status = _parse_status(value, bool(checked), number, task.ref)
        elif key == "complexity":
            task.complexity = _parse_complexity(value, number, task.ref)
        elif key == "estimated":
            task.estimate = _parse_estimate(value, number, f"task {task.ref}")
        elif key == "dependencies":
            task.links = _parse_links(value, number, task.ref)
        elif key == "priority":
            task.priority = _parse_priority(value, number, task.ref)
        elif key == "start":
            task.start = _parse_day(value, number, task.ref, "start")
        elif key == "due":
            task.due = _parse_day(value, number, task.ref, "due")
        elif key == "milestone":
            task.milestone = _parse_milestone(value, number, task.ref)
        elif key == "description":
            task.in_description = True
            if value:
                _add_item(number, task, value, False)

    # -- whole-document checks

    def finish(self) -> PlanDocument:
        if self.comment_line is not None:
            raise PlanSyntaxError(
                self.comment_line, "an HTML comment opened here is never closed with -->"
            )
        drafts = [task for phase in self.phases for task in phase.tasks]
        self._check_is_plan(drafts)
        for task in drafts:
            task.check()
        _check_dependencies(drafts)
        return PlanDocument(
            name=self._project_name(),
            description=self._overview_text("description", MAX_PROJECT_DESCRIPTION),
            phases=tuple(
                PlanPhase(p.name, p.estimate, tuple(t.build() for t in p.tasks))
                for p in self.phases
            ),
            target_users=self._overview_text("target users", MAX_PROJECT_DESCRIPTION) or None,
            project_type=self._overview_text("project type", MAX_PROJECT_DESCRIPTION) or None,
        )

    def _overview_text(self, key: str, max_length: int) -> str:
        """An Overview field's text (unescaped), checked like the API checks it."""
        text = unescape_text(self.overview.get(key, ""))
        problem = text_problem(text, max_length) if text else None
        if problem is not None:
            raise PlanSyntaxError(self.overview_lines[key], f"the Overview's {key} {problem}")
        return text

    def _check_is_plan(self, drafts: Sequence[_TaskDraft]) -> None:
        if self.tasks_line is None:
            raise PlanSyntaxError(1, f"not a plan: no '## {TASKS_HEADING}' section")
        if not self.phases:
            raise PlanSyntaxError(
                self.tasks_line, f"not a plan: '## {TASKS_HEADING}' has no '### Phase' headings"
            )
        if not drafts:
            raise PlanSyntaxError(
                self.tasks_line, "not a plan: no '#### T1.1: Title' task under any phase"
            )
        self._project_name()

    def _project_name(self) -> str:
        named = unescape_text(self.overview.get("project name", ""))
        name = named or self.title_name
        if not name:
            raise PlanSyntaxError(
                1, "not a plan: no '**Project Name**:' in the Overview and no '# Name - ...' title"
            )
        problem = line_problem(name, MAX_PROJECT_NAME)
        if problem is not None:
            line = self.overview_lines["project name"] if named else self.title_line
            raise PlanSyntaxError(line, f"the project name {problem}")
        return name


def _comment_start(line: str, position: int, runs: _BacktickRuns) -> int:
    """Where the first ``<!--`` at or after ``position`` outside code spans is (-1: none).
    A code span is a run of backticks closed by a run of the same length on the line; an
    unclosed run is literal backticks."""
    while True:
        found = _CODE_OR_COMMENT.search(line, position)
        if found is None:
            return -1
        if found[0] == _COMMENT_OPEN:
            return found.start()
        closing = runs.closing_end(len(found[0]), found.end())
        position = found.end() if closing is None else closing


class _BacktickRuns:
    """The runs of backticks of a line by length, found once (on first use): a code span's
    closing run is then a bisection, not a search of the rest of the line per opening run
    (which was quadratic on a hostile line of runs that never close)."""

    def __init__(self, line: str) -> None:
        self.line = line
        self._starts: dict[int, list[int]] | None = None

    def closing_end(self, length: int, after: int) -> int | None:
        """The end of the first run of exactly ``length`` backticks starting at or after
        ``after`` (None: there is none)."""
        if self._starts is None:
            self._starts = {}
            for run in _BACKTICKS.finditer(self.line):
                self._starts.setdefault(run.end() - run.start(), []).append(run.start())
        starts = self._starts.get(length, [])
        index = bisect_left(starts, after)
        return starts[index] + length if index < len(starts) else None


def split_phase_heading(content: str) -> tuple[str, str | None]:
    """``Phase 1: Name (Est: 12 hours)`` → (``Phase 1: Name``, ``12 hours``): the estimate
    is a last parenthesis ``(Est: …)`` holding no other parenthesis. ``content`` is the
    stripped heading text. (Written out rather than as one regex, which took quadratic
    time on a heading of many spaces.)"""
    start = content.rfind("(")
    if (
        start > 0
        and content.startswith("(Est:", start)
        and content.endswith(")")
        and ")" not in content[start:-1]
    ):
        return content[:start].rstrip(), content[start + len("(Est:") : -1].lstrip()
    return content, None


def _add_item(number: int, task: _TaskDraft, text: str, done: bool) -> None:
    text = unescape_text(text)
    problem = line_problem(text, MAX_TITLE)
    if problem is not None:
        raise PlanSyntaxError(number, f"task {task.ref}: a Description item {problem}")
    if len(task.checklist) >= MAX_CHECKLIST:
        raise PlanSyntaxError(
            number, f"task {task.ref}: at most {MAX_CHECKLIST} Description items per task"
        )
    task.checklist.append(ChecklistItem(text, done))


_TASK_FIELDS = frozenset(
    {
        "status",
        "complexity",
        "estimated",
        "dependencies",
        "description",
        "priority",
        "start",
        "due",
        "milestone",
    }
)
_FIELD_ALIASES = {
    "estimate": "estimated",
    "depends on": "dependencies",
    "start date": "start",
    "due date": "due",
}


def _field_key(raw: str) -> str:
    key = " ".join(raw.lower().split())
    return _FIELD_ALIASES.get(key, key)


def _is_unset(value: str) -> bool:
    """Empty, a ``{{PLACEHOLDER}}`` or a word like None / TBD."""
    value = value.strip()
    return value.lower() in _UNSET_WORDS or bool(_PLACEHOLDER.match(value))


def split_checkbox(text: str) -> tuple[bool | None, str]:
    """``[x] text`` -> (True, text), ``[ ] text`` -> (False, text), ``text`` -> (None, text)."""
    match = _CHECKBOX.match(text)
    if not match:
        return None, text
    return match["mark"] != " ", text[match.end() :].strip()


def _parse_status(value: str, checked: bool, number: int, ref: str) -> TaskStatus:
    """Status word (case and separators tolerated); an empty one follows the checkbox."""
    if _is_unset(value) and value.lower() != "none":
        return TaskStatus.DONE if checked else TaskStatus.TODO
    word = re.sub(r"[\s-]+", "_", value.strip()).upper()
    status = _STATUS_BY_WORD.get(word)
    if status is None:
        allowed = ", ".join(STATUS_WORDS.values())
        raise PlanSyntaxError(number, f"unknown status {value!r} for task {ref} (use {allowed})")
    return status


def _parse_complexity(value: str, number: int, ref: str) -> Complexity | None:
    if _is_unset(value):
        return None
    try:
        return Complexity(value.strip().lower())
    except ValueError:
        raise PlanSyntaxError(
            number, f"unknown complexity {value!r} for task {ref} (use Low, Medium or High)"
        ) from None


def _parse_estimate(value: str | None, number: int, owner: str) -> float | None:
    """Hours as ``12 hours`` / ``1.5h`` / ``3``; unset words and placeholders give None."""
    if value is None or _is_unset(value):
        return None
    match = _ESTIMATE.match(value.strip())
    hours = _to_float(match["number"]) if match else None
    if hours is None:
        raise PlanSyntaxError(
            number,
            f"bad estimate {value!r} for {owner}: expected hours such as '3 hours' or '1.5h'",
        )
    if not math.isfinite(hours) or not 0 <= hours <= MAX_ESTIMATE_HOURS:
        raise PlanSyntaxError(
            number,
            f"bad estimate {value!r} for {owner}: must be between 0 and "
            f"{MAX_ESTIMATE_HOURS:g} hours",
        )
    return hours


def _to_float(number: str) -> float | None:
    try:
        return float(number)
    except ValueError:
        return None


def _parse_priority(value: str, number: int, ref: str) -> Priority | None:
    if _is_unset(value):
        return None
    try:
        return Priority(value.strip().lower())
    except ValueError:
        raise PlanSyntaxError(
            number,
            f"unknown priority {value!r} for task {ref} (use Low, Medium, High or Urgent)",
        ) from None


def iso_day(text: str) -> date | None:
    """The day ``YYYY-MM-DD`` names (ASCII digits, nothing else: no time, no week or
    ordinal dates, which ``date.fromisoformat`` would take); None if it is no such day."""
    if not _ISO_DATE.match(text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _parse_day(value: str, number: int, ref: str, what: str) -> date | None:
    """An ISO calendar date ``2026-03-02``; unset words and placeholders give None."""
    if _is_unset(value):
        return None
    day = iso_day(value.strip())
    if day is None:
        raise PlanSyntaxError(
            number,
            f"bad {what} date {value!r} for task {ref}: write the day as YYYY-MM-DD, "
            "e.g. 2026-03-02",
        )
    return day


def _parse_milestone(value: str, number: int, ref: str) -> bool:
    if _is_unset(value):
        return False
    word = _MILESTONE_WORDS.get(value.strip().lower())
    if word is None:
        raise PlanSyntaxError(
            number, f"bad milestone value {value!r} for task {ref} (use yes or no)"
        )
    return word


def _parse_links(value: str, number: int, ref: str) -> tuple[Dependency, ...]:
    """``None`` / empty, or comma-separated links in plan notation (domain/links.py):
    ``T1.1`` (finish-to-start), ``T1.1 (SS+2d)``, ... The same link written twice counts
    once, as plain lists always did; two different links to one task are refused."""
    if _is_unset(value):
        return ()
    links: dict[str, Dependency] = {}
    for part in value.split(","):
        if not part.strip():
            continue
        try:
            link = parse_dependency(part)
        except DependencySyntaxError as error:
            raise PlanSyntaxError(number, f"task {ref}: {error.detail}") from None
        first = links.setdefault(link.predecessor, link)
        if first != link:
            raise PlanSyntaxError(
                number,
                f"task {ref}: {link.predecessor} is listed twice, as '{first}' and '{link}': "
                "one link per predecessor",
            )
    return tuple(links.values())


def _check_dependencies(drafts: Sequence[_TaskDraft]) -> None:
    """Every dependency names a task of the plan, and they form no cycle."""
    by_ref = {task.ref: task for task in drafts}
    for task in drafts:
        for link in task.links:
            if link.predecessor not in by_ref:
                raise PlanSyntaxError(
                    task.dependencies_line,
                    f"task {task.ref} depends on unknown task {link.predecessor}",
                )
    try:
        assert_acyclic({task.ref: [link.predecessor for link in task.links] for task in drafts})
    except CycleDetected as error:
        raise _cycle_error(error.cycle, by_ref) from None


def _cycle_error(cycle: list[str], by_ref: Mapping[str, _TaskDraft]) -> PlanSyntaxError:
    """Point at the Dependencies line of the cycle's first task in document order."""
    members = cycle[:-1]
    first = min(range(len(members)), key=lambda i: by_ref[members[i]].line)
    rotated = members[first:] + members[:first] + [members[first]]
    task = by_ref[rotated[0]]
    return PlanSyntaxError(task.dependencies_line, f"dependency cycle: {describe_cycle(rotated)}")


# --------------------------------------------------------------------------- rendering


def plan_to_nodes(doc: PlanDocument) -> list[TaskNode]:
    """Task nodes of a plan, keyed by plan ref, for DAG and progress functions."""
    return [
        TaskNode(
            id=task.ref,
            ref=task.ref,
            status=task.status,
            estimate_hours=task.estimate_hours,
            phase=phase.name,
            blocked_by=task.dependencies,
        )
        for phase in doc.phases
        for task in phase.tasks
    ]


def plan_progress(doc: PlanDocument) -> Progress:
    """The progress roll-up of a plan document."""
    return compute_progress(plan_to_nodes(doc), [phase.name for phase in doc.phases])


def render_plan(
    doc: PlanDocument, *, generated: date | None = None, updated: date | None = None
) -> str:
    """The plan as Markdown in the template's format, with progress filled in."""
    progress = plan_progress(doc)
    focus = {task.ref: f"{task.ref}: {_one_line(task.title)}" for task in doc.tasks()}
    blocks = [
        _render_header(doc, generated, updated),
        _render_overview(doc, progress),
        "---",
        f"## {TASKS_HEADING}",
        *(block for phase in doc.phases for block in _render_phase(phase)),
        render_progress_section(progress, focus),
    ]
    return "\n\n".join(blocks) + "\n"


def _render_header(doc: PlanDocument, generated: date | None, updated: date | None) -> str:
    kind = f"{_one_line(doc.project_type)} Project Plan" if doc.project_type else "Project Plan"
    lines = [f"# {_one_line(doc.name)} - {kind}"]
    dates = []
    if generated is not None:
        dates.append(f"*Generated: {generated.isoformat()}*")
    if updated is not None:
        dates.append(f"*Last Updated: {updated.isoformat()}*")
    if dates:
        lines += ["", *dates]
    return "\n".join(lines)


def _render_overview(doc: PlanDocument, progress: Progress) -> str:
    fields = [
        ("Project Name", doc.name),
        ("Description", doc.description),
        ("Target Users", doc.target_users),
        ("Project Type", doc.project_type),
        ("Status", f"{overall_status(progress)} ({progress.percent}% complete)"),
    ]
    lines = [f"**{key}**: {_one_line(value)}" for key, value in fields if value]
    return "\n\n".join(["## Overview", *lines])


def overall_status(progress: Progress) -> str:
    """Not Started / In Progress / Completed, for the Overview's Status line."""
    if progress.total and progress.completed == progress.total:
        return "Completed"
    if progress.completed or progress.in_progress:
        return "In Progress"
    return "Not Started"


def _render_phase(phase: PlanPhase) -> list[str]:
    estimate = format_hours(phase.estimate_hours) if phase.estimate_hours is not None else "TBD"
    heading = f"### {_one_line(phase.name)} (Est: {estimate})"
    return [heading, *(_render_task(task) for task in phase.tasks), "---"]


def _render_task(task: PlanTask) -> str:
    box = "x" if task.status is TaskStatus.DONE else " "
    lines = [
        f"#### {task.ref}: {_one_line(task.title)}",
        f"- [{box}] **Status**: {STATUS_WORDS[task.status]}",
    ]
    if task.priority is not None:
        lines.append(f"- **Priority**: {_PRIORITY_WORDS[task.priority]}")
    if task.complexity is not None:
        lines.append(f"- **Complexity**: {_COMPLEXITY_WORDS[task.complexity]}")
    if task.estimate_hours is not None:
        lines.append(f"- **Estimated**: {format_hours(task.estimate_hours)}")
    if task.milestone:
        lines.append("- **Milestone**: yes")
    if task.start is not None:
        lines.append(f"- **Start**: {task.start.isoformat()}")
    if task.due is not None:
        lines.append(f"- **Due**: {task.due.isoformat()}")
    lines.append(f"- **Dependencies**: {format_dependencies(task.links) or 'None'}")
    if task.checklist:
        lines.append("- **Description**:")
        lines += [f"  - {_render_item(item)}" for item in task.checklist]
    return "\n".join(lines)


def _render_item(item: ChecklistItem) -> str:
    """``[x] text`` when done; a plain ``text`` unless it would itself read as a checkbox."""
    text = _one_line(item.text)
    if item.done:
        return f"[x] {text}"
    return f"[ ] {text}" if split_checkbox(text)[0] is not None else text


def format_hours(hours: float) -> str:
    """``1.5 hours``, ``3 hours``, ``1 hour``: integers without ``.0``, decimals kept."""
    number = str(int(hours)) if hours.is_integer() and abs(hours) < 1e15 else repr(hours)
    return f"{number} hour" if hours == 1 else f"{number} hours"


def render_progress_section(progress: Progress, describe: Mapping[str, str] | None = None) -> str:
    """The "## Progress Tracking" section; ``describe`` maps focus task ids to display text."""
    names = describe or {}
    phases = [f"- {_one_line(p.name)} → {p.percent}%" for p in progress.phases]
    focus = [f"- {_one_line(names.get(i, i))}" for i in progress.current_focus]
    overall = [
        "### Overall Status",
        f"**Total Tasks**: {progress.total}",
        f"**Completed**: {progress.completed} {progress_bar(progress.percent)} "
        f"({progress.percent}%)",
        f"**In Progress**: {progress.in_progress}",
        f"**Blocked**: {progress.blocked}",
    ]
    return "\n\n".join(
        [
            "## Progress Tracking",
            "\n".join(overall),
            "\n".join(["### Phase Progress", *(phases or ["- None"])]),
            "\n".join(["### Current Focus", *(focus or ["- None"])]),
        ]
    )


def _one_line(text: str | None) -> str:
    """Free text as exported: line breaks would split a heading or bullet, so they become
    spaces; ``<!--`` is escaped so that it never opens a comment (:func:`escape_text`)."""
    return escape_text(" ".join((text or "").replace("\r", "\n").split("\n")).strip())
