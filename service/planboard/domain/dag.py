"""Dependency DAG algorithms over ``task id -> ids it is blocked by`` maps.

All functions are iterative (no recursion limit at 100k nodes) and O(V + E).
Cycles are reported as node lists where each node is blocked by the next one
and the first node is repeated at the end, e.g. ``[a, b, c, a]``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Mapping

from .errors import CycleDetected
from .model import TaskNode

Edges = Mapping[str, Iterable[str]]


def edges_of(tasks: Iterable[TaskNode]) -> dict[str, tuple[str, ...]]:
    """The ``id -> blocked_by`` map of task nodes, in input order."""
    return {task.id: task.blocked_by for task in tasks}


def find_cycle_if_added(edges: Edges, task: str, blocked_by: str) -> list[str] | None:
    """The cycle that ``task blocked by blocked_by`` would close, or None if it is safe.

    Adding the edge closes a cycle exactly when ``task`` is reachable from
    ``blocked_by``; the shortest such path is returned (breadth-first search).
    """
    if task == blocked_by:
        return [task, task]
    parent: dict[str, str] = {blocked_by: blocked_by}
    queue = deque([blocked_by])
    while queue:
        node = queue.popleft()
        for nxt in edges.get(node, ()):
            if nxt in parent:
                continue
            parent[nxt] = node
            if nxt == task:
                return [task, *_path_to(parent, node, blocked_by), task]
            queue.append(nxt)
    return None


def _path_to(parent: Mapping[str, str], end: str, start: str) -> list[str]:
    """The BFS tree path ``start -> ... -> end``."""
    path = [end]
    while path[-1] != start:
        path.append(parent[path[-1]])
    path.reverse()
    return path


def assert_can_add(edges: Edges, task: str, blocked_by: str) -> None:
    """Raise CycleDetected if ``task blocked by blocked_by`` would close a cycle."""
    cycle = find_cycle_if_added(edges, task, blocked_by)
    if cycle is not None:
        raise CycleDetected(cycle)


def assert_acyclic(edges: Edges) -> None:
    """Raise CycleDetected (naming one cycle) if the whole graph has a cycle."""
    topological_order(edges)


def topological_order(nodes: Edges) -> list[str]:
    """Node ids with every blocker before the tasks it blocks.

    Stable: the input order is kept, except that a node's not-yet-listed blockers
    are pulled in right before it (in the order they are listed), so an input
    that is already ordered comes back unchanged. Blockers that are not keys of
    ``nodes`` are ignored. Raises CycleDetected.
    """
    order: list[str] = []
    done: set[str] = set()
    for root in nodes:
        if root not in done:
            _visit_from(nodes, root, done, order)
    return order


def _visit_from(nodes: Edges, root: str, done: set[str], order: list[str]) -> None:
    """Iterative depth-first post-order from ``root``, appending finished nodes to ``order``."""
    path: list[str] = [root]
    on_path: dict[str, int] = {root: 0}
    iterators: list[Iterator[str]] = [iter(nodes[root])]
    while iterators:
        nxt = next(iterators[-1], None)
        if nxt is None:
            node = path.pop()
            del on_path[node]
            iterators.pop()
            done.add(node)
            order.append(node)
        elif nxt in on_path:
            raise CycleDetected([*path[on_path[nxt] :], nxt])
        elif nxt not in done and nxt in nodes:
            on_path[nxt] = len(path)
            path.append(nxt)
            iterators.append(iter(nodes[nxt]))


def open_blockers(task: TaskNode, tasks_by_id: Mapping[str, TaskNode]) -> list[str]:
    """Ids of the task's blockers that still exist and are open."""
    return [
        blocker
        for blocker in dict.fromkeys(task.blocked_by)
        if blocker in tasks_by_id and tasks_by_id[blocker].status.is_open
    ]


def is_ready(task: TaskNode, tasks_by_id: Mapping[str, TaskNode]) -> bool:
    """Whether work can start: the task is open and nothing open blocks it."""
    return task.status.is_open and not open_blockers(task, tasks_by_id)


def inverse(edges: Edges) -> dict[str, list[str]]:
    """``id -> ids it blocks`` from ``id -> ids it is blocked by`` (every node gets a key)."""
    blocks: dict[str, list[str]] = {node: [] for node in edges}
    for node, blockers in edges.items():
        for blocker in dict.fromkeys(blockers):
            blocks.setdefault(blocker, []).append(node)
    return blocks
