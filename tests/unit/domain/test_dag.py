"""Dependency DAG: cycle refusal, topological order, readiness, scale."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from planboard.domain.dag import (
    assert_acyclic,
    assert_can_add,
    edges_of,
    find_cycle_if_added,
    inverse,
    is_ready,
    open_blockers,
    topological_order,
)
from planboard.domain.errors import Conflict, CycleDetected
from planboard.domain.model import TaskNode, TaskStatus

Graph = dict[str, list[str]]


@st.composite
def dags(draw: st.DrawFn, max_nodes: int = 10) -> Graph:
    """Random DAG: a node is only blocked by nodes of lower rank; keys in random order."""
    names = [f"n{i}" for i in range(draw(st.integers(1, max_nodes)))]
    graph = {
        name: draw(st.lists(st.sampled_from(names[:rank]), unique=True)) if rank else []
        for rank, name in enumerate(names)
    }
    order = draw(st.permutations(names))
    return {name: graph[name] for name in order}


@st.composite
def graphs(draw: st.DrawFn, max_nodes: int = 8) -> Graph:
    """Random directed graph, cycles and self-loops allowed."""
    names = [f"n{i}" for i in range(draw(st.integers(1, max_nodes)))]
    return {name: draw(st.lists(st.sampled_from(names), unique=True)) for name in names}


def reachable(graph: Mapping[str, Sequence[str]], start: str) -> set[str]:
    """Brute force: every node reachable from ``start`` by one or more edges."""
    seen: set[str] = set()
    frontier = list(graph.get(start, ()))
    while frontier:
        node = frontier.pop()
        if node not in seen:
            seen.add(node)
            frontier.extend(graph.get(node, ()))
    return seen


def has_cycle(graph: Mapping[str, Sequence[str]]) -> bool:
    return any(node in reachable(graph, node) for node in graph)


def assert_valid_cycle(cycle: list[str], graph: Mapping[str, Sequence[str]]) -> None:
    assert len(cycle) >= 2
    assert cycle[0] == cycle[-1]
    for task, blocker in itertools.pairwise(cycle):
        assert blocker in graph[task]


@given(dags(), st.data())
def test_adding_an_edge_is_refused_exactly_when_it_closes_a_cycle(
    graph: Graph, data: st.DataObject
) -> None:
    task = data.draw(st.sampled_from(list(graph)))
    blocker = data.draw(st.sampled_from(list(graph)))
    cycle = find_cycle_if_added(graph, task, blocker)
    closes = task == blocker or task in reachable(graph, blocker)
    assert (cycle is not None) == closes
    if cycle is not None:
        assert cycle[:2] == [task, blocker]
        with_edge = {**graph, task: [*graph[task], blocker]}
        assert_valid_cycle(cycle, with_edge)
        with pytest.raises(CycleDetected):
            assert_can_add(graph, task, blocker)
    else:
        assert_can_add(graph, task, blocker)


@given(graphs())
def test_assert_acyclic_raises_exactly_on_cyclic_graphs(graph: Graph) -> None:
    if has_cycle(graph):
        with pytest.raises(CycleDetected) as raised:
            assert_acyclic(graph)
        assert_valid_cycle(raised.value.cycle, graph)
        assert " -> ".join(raised.value.cycle) in raised.value.detail
    else:
        assert_acyclic(graph)


@given(dags())
def test_topological_order_puts_blockers_first(graph: Graph) -> None:
    order = topological_order(graph)
    assert sorted(order) == sorted(graph)
    position = {node: index for index, node in enumerate(order)}
    for task, blockers in graph.items():
        for blocker in blockers:
            assert position[blocker] < position[task]


@given(dags())
def test_topological_order_keeps_an_already_sorted_input(graph: Graph) -> None:
    ordered = topological_order(graph)
    resorted = {node: graph[node] for node in ordered}
    assert topological_order(resorted) == ordered


def test_topological_order_pulls_blockers_forward_and_keeps_the_rest() -> None:
    graph = {"c": ["b"], "a": [], "b": [], "d": ["ghost"]}
    assert topological_order(graph) == ["b", "c", "a", "d"]


def test_cycle_detected_is_a_conflict_naming_the_cycle() -> None:
    with pytest.raises(Conflict, match="a -> b -> c -> a"):
        assert_acyclic({"a": ["b"], "b": ["c"], "c": ["a"]})


def test_self_dependency_is_a_cycle() -> None:
    assert find_cycle_if_added({"a": []}, "a", "a") == ["a", "a"]


def test_unknown_nodes_have_no_edges() -> None:
    assert find_cycle_if_added({}, "a", "b") is None
    assert find_cycle_if_added({"b": ["a"]}, "a", "b") == ["a", "b", "a"]


def test_shortest_cycle_is_reported() -> None:
    graph = {"b": ["x", "a"], "x": ["y"], "y": ["a"], "a": []}
    assert find_cycle_if_added(graph, "a", "b") == ["a", "b", "a"]


N = 100_000


def test_hundred_thousand_node_chain_needs_no_recursion() -> None:
    chain = {f"t{i}": [f"t{i - 1}"] if i else [] for i in reversed(range(N))}
    order = topological_order(chain)
    assert order == [f"t{i}" for i in range(N)]
    assert_acyclic(chain)
    cycle = find_cycle_if_added(chain, "t0", f"t{N - 1}")
    assert cycle is not None
    assert len(cycle) == N + 1
    assert find_cycle_if_added(chain, f"t{N - 1}", "t0") is None
    blocks = inverse(chain)
    assert blocks["t0"] == ["t1"]
    assert blocks[f"t{N - 1}"] == []


def node(task_id: str, status: TaskStatus, *blocked_by: str) -> TaskNode:
    return TaskNode(id=task_id, status=status, blocked_by=blocked_by)


def test_ready_when_every_existing_blocker_is_closed() -> None:
    tasks = [
        node("done", TaskStatus.DONE),
        node("dropped", TaskStatus.CANCELLED),
        node("open", TaskStatus.IN_PROGRESS),
        node("a", TaskStatus.TODO, "done", "dropped", "deleted"),
        node("b", TaskStatus.BLOCKED, "done", "open", "open"),
        node("c", TaskStatus.DONE),
    ]
    by_id = {task.id: task for task in tasks}
    assert open_blockers(by_id["a"], by_id) == []
    assert is_ready(by_id["a"], by_id)
    assert open_blockers(by_id["b"], by_id) == ["open"]
    assert not is_ready(by_id["b"], by_id)
    assert not is_ready(by_id["c"], by_id)
    assert edges_of(tasks)["b"] == ("done", "open", "open")


def test_inverse_lists_what_each_task_blocks() -> None:
    assert inverse({"a": ["b", "c"], "b": ["c"], "c": []}) == {
        "a": [],
        "b": ["a"],
        "c": ["a", "b"],
    }
    assert inverse({"a": ["gone"]}) == {"a": [], "gone": ["a"]}


@given(dags())
def test_inverse_is_the_transpose(graph: Graph) -> None:
    blocks = inverse(graph)
    pairs = {(t, b) for t, bs in graph.items() for b in bs}
    assert {(t, b) for b, ts in blocks.items() for t in ts} == pairs
