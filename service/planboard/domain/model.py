"""Value types of the planning domain: statuses, plan documents and DAG task nodes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum

from .links import Dependency


class TaskStatus(StrEnum):
    """Lifecycle of a task; ``done`` and ``cancelled`` are the closed states."""

    TODO = "todo"
    IN_PROGRESS = "in_progress"
    BLOCKED = "blocked"
    DONE = "done"
    CANCELLED = "cancelled"

    @property
    def is_open(self) -> bool:
        """Whether work remains (neither done nor cancelled)."""
        return self not in _CLOSED

    @property
    def is_closed(self) -> bool:
        """Whether the task no longer blocks anything (done or cancelled)."""
        return self in _CLOSED


_CLOSED = frozenset({TaskStatus.DONE, TaskStatus.CANCELLED})


class Complexity(StrEnum):
    """Rough size class of a task."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class Priority(StrEnum):
    """How urgent a task is; a task without one (``None``) has no priority."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    URGENT = "urgent"


@dataclass(frozen=True, slots=True)
class ChecklistItem:
    """One bullet of a task's Description list."""

    text: str
    done: bool = False


@dataclass(frozen=True, slots=True)
class PlanTask:
    """A ``#### T1.1: Title`` block of a plan.

    ``links`` are the typed dependencies (``T1.1 (SS+2d)``); ``dependencies`` are their
    predecessors' refs, in the same order: the finish-to-start view that progress, the
    DAG and the stored ``blocked_by`` use. Give either one (refs alone become
    finish-to-start links without lag) or both naming the same predecessors.

    ``start`` and ``due`` are calendar days (the first day of work, the day it must be
    finished by); a ``milestone`` takes no time. ``line`` is where the heading was found
    (0 when built in code); it is provenance, not content, so it takes no part in equality.
    """

    ref: str
    title: str
    status: TaskStatus = TaskStatus.TODO
    complexity: Complexity | None = None
    estimate_hours: float | None = None
    dependencies: tuple[str, ...] = ()
    checklist: tuple[ChecklistItem, ...] = ()
    links: tuple[Dependency, ...] = ()
    priority: Priority | None = None
    start: date | None = None
    due: date | None = None
    milestone: bool = False
    line: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        refs = tuple(link.predecessor for link in self.links)
        if not self.links:
            links = tuple(Dependency(ref) for ref in self.dependencies)
            object.__setattr__(self, "links", links)
        elif not self.dependencies:
            object.__setattr__(self, "dependencies", refs)
        elif refs != tuple(self.dependencies):
            raise ValueError(
                f"task {self.ref}: dependencies {self.dependencies} and links {refs} "
                "name different predecessors"
            )


@dataclass(frozen=True, slots=True)
class PlanPhase:
    """A ``### Phase N: Name (Est: X hours)`` section; ``name`` is the whole heading text."""

    name: str
    estimate_hours: float | None = None
    tasks: tuple[PlanTask, ...] = ()


@dataclass(frozen=True, slots=True)
class PlanDocument:
    """What a Markdown plan carries that Planboard keeps (Overview + Tasks)."""

    name: str
    description: str = ""
    phases: tuple[PlanPhase, ...] = ()
    target_users: str | None = None
    project_type: str | None = None

    def tasks(self) -> list[PlanTask]:
        """All tasks in document order."""
        return [task for phase in self.phases for task in phase.tasks]


@dataclass(frozen=True, slots=True)
class TaskNode:
    """The slice of a task that DAG and progress computations need."""

    id: str
    ref: str | None = None
    key: str | None = None
    status: TaskStatus = TaskStatus.TODO
    estimate_hours: float | None = None
    phase: str | None = None
    blocked_by: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """How users name the task: plan ref, else human key, else id."""
        return self.ref or self.key or self.id
