"""Pairing a task's status changes into its last in_progress → done (the forecast's
history and the schedule's actual dates)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from planboard.domain.forecast import StatusChange, WorkSpan, work_spans
from planboard.domain.model import TaskStatus

T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def change(task: str, hours: float, status: str) -> StatusChange:
    return StatusChange(task, at(hours), TaskStatus(status))


def test_a_done_pairs_with_the_latest_in_progress_before_it():
    spans = work_spans(
        [
            change("a", 0, "in_progress"),
            change("a", 1, "blocked"),
            change("a", 2, "in_progress"),
            change("a", 5, "done"),
            change("b", 1, "done"),  # never started
            change("c", 3, "in_progress"),  # never finished
        ]
    )
    assert spans == {"a": WorkSpan(at(2), at(5)), "b": WorkSpan(None, at(1))}


def test_a_reopened_task_counts_from_its_last_done():
    spans = work_spans(
        [
            change("a", 0, "in_progress"),
            change("a", 1, "done"),
            change("a", 2, "in_progress"),
            change("a", 4, "done"),
        ]
    )
    assert spans == {"a": WorkSpan(at(2), at(4))}
    # done again without being started again: the first start is already used
    again = work_spans(
        [
            change("a", 0, "in_progress"),
            change("a", 1, "done"),
            change("a", 2, "todo"),
            change("a", 4, "done"),
        ]
    )
    assert again == {"a": WorkSpan(None, at(4))}


changes_lists = st.lists(
    st.builds(
        change,
        st.sampled_from(["a", "b", "c"]),
        st.integers(0, 10_000),
        st.sampled_from([s.value for s in TaskStatus]),
    ),
    max_size=40,
    unique_by=lambda c: (c.task_id, c.at),
)


@given(changes_lists, st.randoms())
def test_spans_follow_the_log(changes, rnd: random.Random):
    spans = work_spans(changes)
    shuffled = list(changes)
    rnd.shuffle(shuffled)
    # the order the log is read in does not matter (times are distinct per task)
    assert work_spans(shuffled) == spans
    for task in {c.task_id for c in changes}:
        own = sorted((c for c in changes if c.task_id == task), key=lambda c: c.at)
        dones = [c.at for c in own if c.status is TaskStatus.DONE]
        if not dones:
            assert task not in spans
            continue
        span = spans[task]
        # the last done, and the latest in_progress after the done before it
        assert span.finished == dones[-1]
        floor = dones[-2] if len(dones) > 1 else None
        starts = [
            c.at
            for c in own
            if c.status is TaskStatus.IN_PROGRESS
            and c.at < span.finished
            and (floor is None or c.at > floor)
        ]
        assert span.started == (starts[-1] if starts else None)
