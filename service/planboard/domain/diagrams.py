"""Mermaid pictures of a project: the dependency graph and the gantt chart (pure text).

Both follow the conventions of the plan template's diagrams (``plan-template.md``:
``graph``/``flowchart`` with quoted ``["…"]`` labels, ``<br/>`` line breaks, ``subgraph``
per group) and are read by mermaid 11 (mermaid.live, GitHub, GitLab, mermaid-cli).

Every text that comes from users (project and phase names, task titles) goes through
:func:`mermaid_text`: anything that is not a letter, digit, space or plain punctuation
becomes a mermaid entity code (``#35;`` for ``#``), which mermaid shows as the character
itself. So no title can close a label, start a comment (``%%``), a directive
(``%%{init}%%``), a markdown or math string, a ``click`` or a new line, or reach the
rendered SVG as markup: ``<script>`` is drawn as the text ``<script>``.

Node ids come from task keys (``BOOK-3`` → ``BOOK_3``): stable across exports, and
letters, digits and ``_`` only.

The gantt chart draws what it is given: a task with ``start`` and ``end`` dates as a bar
(a ``milestone`` as a milestone on its ``start``), a task with only a due date as a
milestone on that day, a dateless task not at all. The export (services/exports.py)
fills ``start``/``end`` from the project's schedule (domain/schedule.py: each task's
early start and finish on the project's calendar, done tasks at their actual dates) for
tasks with an estimate and for milestones, and passes the schedule's critical path.
"""

from __future__ import annotations

import itertools
import math
import re
import string
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date

from .keys import TASK_KEY_RE
from .model import TaskStatus

INDENT = "    "
#: Kept as they are in labels; every other ASCII character becomes an entity code.
_SAFE_ASCII = frozenset(string.ascii_letters + string.digits + " .,-_/()'!?+=*")
#: mermaid's own entity markers (``ﬂ°``, ``¶ß``): kept literally they would turn into ``&``/``;``.
_MARKER_CHARACTERS = frozenset("\ufb02\u00b6")
#: Unicode categories kept as they are (letters, marks, numbers, punctuation, symbols);
#: controls, format characters, separators other than the space, surrogates and unassigned
#: code points are encoded (a U+2028 would end a line for mermaid's preprocessor).
_KEPT_CATEGORIES = frozenset("LMNPS")
_UNSHOWABLE = frozenset({"Cc", "Cs"})
REPLACEMENT = "\ufffd"

STATUS_WORDS = {
    TaskStatus.TODO: "to do",
    TaskStatus.IN_PROGRESS: "in progress",
    TaskStatus.BLOCKED: "blocked",
    TaskStatus.DONE: "done",
    TaskStatus.CANCELLED: "cancelled",
}
#: classDef lines of the graph: one class per status (none for to do) and one for the
#: critical path, which only sets the stroke so it combines with the status's fill.
CRITICAL = "critical"
CRITICAL_STROKE = "stroke:#d9480f,stroke-width:4px"
CLASS_DEFS = {
    "done": "fill:#d3f9d8,stroke:#2b8a3e,color:#1b4332",
    "in_progress": "fill:#d0ebff,stroke:#1971c2,color:#0b3d66",
    "blocked": "fill:#ffe3e3,stroke:#c92a2a,color:#5c0f0f",
    "cancelled": "fill:#f1f3f5,stroke:#868e96,color:#495057,stroke-dasharray:5 5",
    CRITICAL: CRITICAL_STROKE,
}


def mermaid_text(text: str) -> str:
    """``text`` as a safe mermaid label: plain characters kept, the rest as ``#<code>;``.

    Control characters other than tab and newlines, and lone surrogates, become U+FFFD
    (�): no one can see them, and a browser would decode ``#145;`` as a curly quote (HTML reads
    C1 codes as Windows-1252) and ``#0;`` or a surrogate as U+FFFD anyway.
    """
    out = []
    for char in text:
        if char in _SAFE_ASCII or (
            char > "\x7f"
            and char not in _MARKER_CHARACTERS
            and unicodedata.category(char)[0] in _KEPT_CATEGORIES
        ):
            out.append(char)
        elif unicodedata.category(char) in _UNSHOWABLE and char not in "\t\n\r":
            out.append(REPLACEMENT)
        else:
            out.append(f"#{ord(char)};")
    return "".join(out)


def shown_as(text: str) -> str:
    """What a renderer displays for :func:`mermaid_text` of ``text``."""
    return "".join(
        REPLACEMENT if unicodedata.category(char) in _UNSHOWABLE and char not in "\t\n\r" else char
        for char in text
    )


def title_text(text: str, fallback: str) -> str:
    """A diagram, phase or accessibility title: :func:`mermaid_text` without surrounding
    spaces (mermaid would trim some and keep others; a blank ``accTitle:`` would take the
    next line as its text), ``fallback`` when nothing is left."""
    return mermaid_text(text.strip(" ")) or mermaid_text(fallback)


@dataclass(frozen=True, slots=True)
class DiagramTask:
    """What the pictures show of one task.

    ``ref`` is how people name it (the plan ref, else the key); ``blocked_by`` holds
    task ids; ``phase`` is an index into the phase names, None for no phase. ``start``
    and ``end`` (inclusive) are scheduled dates, ``due`` the due date; a ``milestone``
    with dates is drawn as a milestone on its ``start``.
    """

    id: str
    key: str
    ref: str
    title: str
    status: TaskStatus = TaskStatus.TODO
    estimate_hours: float | None = None
    phase: int | None = None
    blocked_by: tuple[str, ...] = ()
    due: date | None = None
    start: date | None = None
    end: date | None = None
    milestone: bool = False

    @property
    def scheduled(self) -> bool:
        return self.start is not None and self.end is not None and self.start <= self.end


def node_ids(tasks: Sequence[DiagramTask]) -> dict[str, str]:
    """``task id -> mermaid node id``: the key with ``_`` for ``-`` (``task_<n>`` otherwise)."""
    ids: dict[str, str] = {}
    taken: set[str] = set()
    for index, task in enumerate(tasks, start=1):
        candidate = task.key.replace("-", "_") if TASK_KEY_RE.match(task.key) else ""
        if not candidate or candidate in taken:
            candidate = f"task_{index}"
            while candidate in taken:
                candidate += "_"
        taken.add(candidate)
        ids[task.id] = candidate
    return ids


def _hours(value: float | None) -> str:
    return f"{value:g} h" if value is not None and math.isfinite(value) else ""


def _label(task: DiagramTask) -> str:
    facts = [STATUS_WORDS[task.status], _hours(task.estimate_hours)]
    if task.due is not None:
        facts.append(f"due {task.due.isoformat()}")
    first = mermaid_text(f"{task.ref}: {task.title}")
    return first + "<br/>" + mermaid_text(" · ".join(fact for fact in facts if fact))


def _chain_edges(path: Sequence[str]) -> set[tuple[str, str]]:
    return set(itertools.pairwise(path))


def flowchart(
    project_name: str,
    project_key: str,
    phases: Sequence[str],
    tasks: Sequence[DiagramTask],
    critical_path: Sequence[str],
    critical_path_hours: float,
) -> str:
    """The dependency graph: blocker → blocked, one subgraph per phase (in order, empty
    ones left out), the critical path's tasks and edges drawn with a thick orange stroke.

    ``critical_path`` lists task ids first to last; ids not among ``tasks`` are ignored.
    """
    ids = node_ids(tasks)
    by_id = {task.id: task for task in tasks}
    path = [task_id for task_id in critical_path if task_id in by_id]
    path_refs = " → ".join(by_id[task_id].ref for task_id in path)
    lines = [
        f"%% Planboard: dependency graph of project {mermaid_text(project_key)}",
        "%% (blocker --> blocked; the critical path has a thick orange outline)",
        "flowchart LR",
        f"{INDENT}accTitle: {title_text(project_name, project_key)}",
        f"{INDENT}accDescr: "
        + mermaid_text(
            f"Task dependencies; critical path {path_refs} ({_hours(critical_path_hours)})"
            if path
            else "Task dependencies; no open tasks, so no critical path"
        ),
    ]
    in_phase: dict[int, list[DiagramTask]] = {}
    loose: list[DiagramTask] = []
    for task in tasks:
        if task.phase is not None and 0 <= task.phase < len(phases):
            in_phase.setdefault(task.phase, []).append(task)
        else:
            loose.append(task)
    for index, name in enumerate(phases):
        members = in_phase.get(index)
        if not members:
            continue
        title = title_text(name, f"Phase {index + 1}")
        lines.append(f'{INDENT}subgraph phase_{index + 1} ["{title}"]')
        lines += [f'{INDENT * 2}{ids[t.id]}["{_label(t)}"]' for t in members]
        lines.append(f"{INDENT}end")
    lines += [f'{INDENT}{ids[t.id]}["{_label(t)}"]' for t in loose]

    critical_edges = _chain_edges(path)
    critical_links: list[str] = []
    edge_count = 0
    for task in tasks:
        for blocker in dict.fromkeys(task.blocked_by):
            if blocker not in by_id or blocker == task.id:
                continue
            lines.append(f"{INDENT}{ids[blocker]} --> {ids[task.id]}")
            if (blocker, task.id) in critical_edges:
                critical_links.append(str(edge_count))
            edge_count += 1

    lines += [f"{INDENT}classDef {name} {style}" for name, style in CLASS_DEFS.items()]
    for status in STATUS_WORDS:
        if status is TaskStatus.TODO:
            continue
        styled = [ids[t.id] for t in tasks if t.status is status]
        if styled:
            lines.append(f"{INDENT}class {','.join(styled)} {status.value}")
    if path:
        lines.append(f"{INDENT}class {','.join(ids[t] for t in path)} {CRITICAL}")
    if critical_links:
        lines.append(f"{INDENT}linkStyle {','.join(critical_links)} {CRITICAL_STROKE}")
    return "\n".join(lines) + "\n"


def has_dates(tasks: Iterable[DiagramTask]) -> bool:
    """Whether a gantt chart would show anything: an open or done task with a date."""
    return any(_drawn(task) for task in tasks)


def _drawn(task: DiagramTask) -> bool:
    return task.status is not TaskStatus.CANCELLED and (task.scheduled or task.due is not None)


_GANTT_STATE = {TaskStatus.DONE: "done", TaskStatus.IN_PROGRESS: "active"}


def gantt(
    project_name: str,
    project_key: str,
    phases: Sequence[str],
    tasks: Sequence[DiagramTask],
    critical_path: Sequence[str],
    *,
    project_start: date | None = None,
    project_target: date | None = None,
    unphased: str = "Unphased",
) -> str | None:
    """The gantt chart of the dated tasks, one section per phase; None if none has a date.

    A scheduled task is a bar from ``start`` to ``end`` (inclusive), a scheduled
    milestone a milestone on its ``start``, a task with only a due date a milestone on
    it; done tasks are ``done``, in-progress ones ``active``, critical ones ``crit``.
    Cancelled and dateless tasks are left out (a comment counts them). The project's
    start and target dates, when set, open the chart as milestones. Tasks keep their
    order within a section.
    """
    drawn = [task for task in tasks if _drawn(task)]
    if not drawn:
        return None
    ids = node_ids(tasks)
    critical = set(critical_path)
    left_out = len(tasks) - len(drawn)
    lines = [f"%% Planboard: gantt chart of project {mermaid_text(project_key)}"]
    if left_out:
        lines.append(f"%% {left_out} task(s) without a date (or cancelled) are not shown")
    lines += [
        "gantt",
        f"{INDENT}title {title_text(project_name, project_key)}",
        f"{INDENT}dateFormat YYYY-MM-DD",
    ]
    if any(task.scheduled and not task.milestone for task in drawn):
        lines.append(f"{INDENT}inclusiveEndDates")
    if project_start is not None or project_target is not None:
        lines.append(f"{INDENT}section Project")
        for text, node_id, day in (
            ("Start", "project_start", project_start),
            ("Target", "project_target", project_target),
        ):
            if day is not None:
                lines.append(f"{INDENT}{text} :milestone, {node_id}, {day.isoformat()}, 0d")
    sections: dict[int | None, list[DiagramTask]] = {}
    for task in drawn:
        phase = task.phase if task.phase is not None and 0 <= task.phase < len(phases) else None
        sections.setdefault(phase, []).append(task)
    order: list[int | None] = [i for i in range(len(phases)) if i in sections]
    if None in sections:
        order.append(None)
    for phase in order:
        name = phases[phase] if phase is not None else unphased
        lines.append(f"{INDENT}section {title_text(name, unphased)}")
        for task in sections[phase]:
            lines.append(INDENT + _gantt_line(task, ids[task.id], task.id in critical))
    return "\n".join(lines) + "\n"


def _gantt_line(task: DiagramTask, node_id: str, critical: bool) -> str:
    tags = []
    if task.milestone or not task.scheduled:
        tags.append("milestone")
    if task.status in _GANTT_STATE:
        tags.append(_GANTT_STATE[task.status])
    if critical:
        tags.append("crit")
    if task.start is not None and task.scheduled and task.milestone:
        when = f"{task.start.isoformat()}, 0d"
    elif task.start is not None and task.end is not None and task.scheduled:
        when = f"{task.start.isoformat()}, {task.end.isoformat()}"
    elif task.due is not None:
        when = f"{task.due.isoformat()}, 0d"
    else:  # pragma: no cover - gantt() draws only tasks with a date
        raise ValueError(f"task {task.ref} has no date")
    # "[ref] title": the bracket keeps a ref such as "title" or "section" from reading as
    # a gantt keyword (mermaid's lexer matches keywords at the start of a line).
    text = f"[{mermaid_text(task.ref)}] {mermaid_text(task.title)}"
    return f"{text} :{', '.join([*tags, node_id, when])}"


_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_date(value: object) -> date | None:
    """A stored ``YYYY-MM-DD`` string as a date (None for anything else)."""
    if not isinstance(value, str) or not _ISO_DATE.match(value):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None
