"""Progress roll-up: the SPEC §7 sample answer and properties against brute force."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from planboard.domain.errors import CycleDetected
from planboard.domain.model import TaskNode, TaskStatus
from planboard.domain.plan import parse_plan, plan_to_nodes
from planboard.domain.progress import compute_progress, progress_bar

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
PHASES = ["P1", "P2", "P3"]

SAMPLE_ANSWER = {
    "total": 5,
    "completed": 2,
    "in_progress": 1,
    "blocked": 1,
    "percent": 40,
    "remaining_estimate_hours": 16.0,
    "critical_path": ["T1.3", "T2.2"],
    "critical_path_hours": 12.0,
    "phases": [
        {"name": "Phase 1: Foundation", "total": 3, "completed": 2, "percent": 66},
        {"name": "Phase 2: Core API", "total": 2, "completed": 0, "percent": 0},
    ],
    "current_focus": ["T1.3"],
}


def test_sample_plan_progress_is_the_spec_answer() -> None:
    doc = parse_plan((FIXTURES / "sample-plan.md").read_text(encoding="utf-8"))
    progress = compute_progress(plan_to_nodes(doc), [phase.name for phase in doc.phases])
    answer = progress.to_dict()
    assert answer == SAMPLE_ANSWER
    assert list(answer) == list(SAMPLE_ANSWER)
    assert isinstance(answer["remaining_estimate_hours"], float)
    assert isinstance(answer["critical_path_hours"], float)


def test_labels_fall_back_to_key_then_id_and_focus_lists_ids() -> None:
    tasks = [
        TaskNode(id="id-1", key="PB-1", status=TaskStatus.IN_PROGRESS, estimate_hours=2),
        TaskNode(id="id-2", status=TaskStatus.TODO, estimate_hours=1, blocked_by=("id-1",)),
        TaskNode(id="id-3", ref="T9", status=TaskStatus.CANCELLED, estimate_hours=50),
    ]
    progress = compute_progress(tasks, [])
    assert progress.critical_path == ("PB-1", "id-2")
    assert progress.critical_path_ids == ("id-1", "id-2")
    assert progress.current_focus == ("id-1",)
    assert progress.total == 2
    assert progress.remaining_estimate_hours == 3.0


def test_empty_project_and_empty_phases() -> None:
    answer = compute_progress([], ["Later"]).to_dict()
    assert answer["total"] == 0
    assert answer["percent"] == 0
    assert answer["critical_path"] == []
    assert answer["critical_path_hours"] == 0.0
    assert answer["phases"] == [{"name": "Later", "total": 0, "completed": 0, "percent": 0}]


def test_ties_go_to_the_earliest_task() -> None:
    tasks = [
        TaskNode(id="a", estimate_hours=3),
        TaskNode(id="b", estimate_hours=3),
        TaskNode(id="c", estimate_hours=1, blocked_by=("b", "a")),
    ]
    assert compute_progress(tasks, []).critical_path == ("a", "c")


def test_a_cycle_among_open_tasks_is_reported() -> None:
    tasks = [TaskNode(id="a", blocked_by=("b",)), TaskNode(id="b", blocked_by=("a",))]
    with pytest.raises(CycleDetected):
        compute_progress(tasks, [])


@pytest.mark.parametrize(
    ("percent", "width", "bar"),
    [
        (40, 10, "▓▓▓▓░░░░░░"),
        (0, 10, "░░░░░░░░░░"),
        (100, 10, "▓▓▓▓▓▓▓▓▓▓"),
        (99, 10, "▓▓▓▓▓▓▓▓▓░"),
        (66, 10, "▓▓▓▓▓▓▓░░░"),
        (30, 5, "▓▓░░░"),
        (150, 4, "▓▓▓▓"),
        (-5, 4, "░░░░"),
    ],
)
def test_progress_bar(percent: int, width: int, bar: str) -> None:
    assert progress_bar(percent, width) == bar


estimates = st.none() | st.integers(0, 2000).map(lambda cents: cents / 100)


@st.composite
def task_sets(draw: st.DrawFn, max_tasks: int = 7) -> list[TaskNode]:
    """Random acyclic task sets (blockers of lower rank, plus dangling ids), shuffled."""
    count = draw(st.integers(0, max_tasks))
    ids = [f"t{i}" for i in range(count)]
    tasks = [
        TaskNode(
            id=task_id,
            status=draw(st.sampled_from(TaskStatus)),
            estimate_hours=draw(estimates),
            phase=draw(st.none() | st.sampled_from(PHASES)),
            blocked_by=tuple(draw(st.lists(st.sampled_from([*ids[:rank], "ghost"]), unique=True))),
        )
        for rank, task_id in enumerate(ids)
    ]
    return list(draw(st.permutations(tasks)))


def hours(task: TaskNode) -> float:
    return task.estimate_hours or 0.0


def all_open_chains(tasks: Sequence[TaskNode]) -> list[list[str]]:
    """Brute force: every chain of open tasks, each blocked by the one before it."""
    open_ids = {t.id for t in tasks if t.status.is_open}
    dependents = {
        t.id: [d.id for d in tasks if d.id in open_ids and t.id in d.blocked_by]
        for t in tasks
        if t.id in open_ids
    }
    chains: list[list[str]] = []
    stack = [[task_id] for task_id in open_ids]
    while stack:
        chain = stack.pop()
        chains.append(chain)
        stack.extend([*chain, nxt] for nxt in dependents[chain[-1]])
    return chains


@given(task_sets())
def test_critical_path_is_the_heaviest_chain_of_open_tasks(tasks: list[TaskNode]) -> None:
    progress = compute_progress(tasks, PHASES)
    by_id = {t.id: t for t in tasks}
    path = list(progress.critical_path)
    assert all(by_id[task_id].status.is_open for task_id in path)
    for blocker, task in itertools.pairwise(path):
        assert blocker in by_id[task].blocked_by
    assert progress.critical_path_hours == math.fsum(hours(by_id[i]) for i in path)
    chains = all_open_chains(tasks)
    best = max((math.fsum(hours(by_id[i]) for i in c) for c in chains), default=0.0)
    assert math.isclose(progress.critical_path_hours, best, abs_tol=1e-9)
    assert bool(path) == bool(chains)


@given(task_sets())
def test_totals_percent_and_remaining_hours(tasks: list[TaskNode]) -> None:
    progress = compute_progress(tasks, PHASES)
    counted = [t for t in tasks if t.status is not TaskStatus.CANCELLED]
    assert progress.total == len(counted)
    assert 0 <= progress.percent <= 100
    if progress.total:
        assert progress.percent == math.floor(100 * progress.completed / progress.total)
    assert sum(p.total for p in progress.phases) == sum(1 for t in counted if t.phase)
    assert sum(p.completed for p in progress.phases) == sum(
        1 for t in counted if t.phase and t.status is TaskStatus.DONE
    )
    assert [p.name for p in progress.phases] == PHASES
    for phase in progress.phases:
        assert 0 <= phase.percent <= 100
    expected = math.fsum(hours(t) for t in tasks if t.status.is_open)
    assert progress.remaining_estimate_hours == expected
    in_progress = [t.id for t in tasks if t.status is TaskStatus.IN_PROGRESS]
    assert list(progress.current_focus) == in_progress


def test_hundred_thousand_task_chain() -> None:
    count = 100_000
    tasks = [
        TaskNode(id=f"t{i}", estimate_hours=1.0, blocked_by=(f"t{i - 1}",) if i else ())
        for i in range(count)
    ]
    progress = compute_progress(tasks, [])
    assert len(progress.critical_path) == count
    assert progress.critical_path_hours == float(count)
