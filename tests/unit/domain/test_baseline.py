"""Baselines: freezing a schedule and comparing it with a later one."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from planboard.domain.baseline import Baseline, BaselineTask, compare, freeze
from planboard.domain.calendar import WorkingCalendar
from planboard.domain.links import Dependency
from planboard.domain.schedule import ScheduleTask, schedule_project
from tests.unit.domain.strategies import ALWAYS, Net, nets

WEEK = WorkingCalendar()
MONDAY = datetime(2025, 1, 6, 9, tzinfo=UTC)


def utc(day: int, hour: int) -> datetime:
    return datetime(2025, 1, day, hour, tzinfo=UTC)


def snapshot(tasks: list[ScheduleTask]) -> Baseline:
    return freeze(schedule_project(tasks, calendar=WEEK, project_start=MONDAY))


def test_freeze_keeps_the_early_dates_and_the_finish() -> None:
    baseline = snapshot([ScheduleTask("a", 8), ScheduleTask("b", 4, (Dependency("a"),))])
    assert baseline.project_start == MONDAY
    assert baseline.project_finish == utc(7, 13)
    assert baseline.tasks == (
        BaselineTask("a", utc(6, 9), utc(6, 17)),
        BaselineTask("b", utc(7, 9), utc(7, 13)),
    )


def test_a_slip_is_measured_in_working_hours_and_calendar_time() -> None:
    planned = [
        ScheduleTask("a", 8),
        ScheduleTask("b", 4, (Dependency("a"),)),
        ScheduleTask("c", 2),
        ScheduleTask("gone", 1),
    ]
    baseline = snapshot(planned)
    now = snapshot(
        [
            ScheduleTask("a", 14),  # slipped 6 working hours: into Tuesday
            ScheduleTask("b", 4, (Dependency("a"),)),
            ScheduleTask("c", 1),  # pulled in
            ScheduleTask("new", 1),
        ]
    )
    result = compare(baseline, now, calendar=WEEK)
    # equal slips keep the current order
    assert [(c.id, c.finish_change_hours, c.finish_change) for c in result.slipped] == [
        ("a", 6, timedelta(hours=22)),  # Mon 17:00 -> Tue 15:00
        ("b", 6, timedelta(hours=22)),  # Tue 13:00 -> Wed 11:00
    ]
    b = next(c for c in result.slipped if c.id == "b")
    assert (b.baseline_start, b.current_start) == (utc(7, 9), utc(7, 15))
    assert b.start_change_hours == 6
    assert [(c.id, c.finish_change_hours) for c in result.pulled_in] == [("c", -1)]
    assert result.unchanged == 0
    assert result.new_tasks == ("new",)
    assert result.removed_tasks == ("gone",)
    assert (result.baseline_finish, result.current_finish) == (utc(7, 13), utc(8, 11))
    assert result.finish_change_hours == 6
    assert result.finish_change == timedelta(hours=22)


def test_slipped_tasks_come_most_slipped_first() -> None:
    baseline = snapshot([ScheduleTask("a", 1), ScheduleTask("b", 1), ScheduleTask("c", 1)])
    now = snapshot([ScheduleTask("a", 2), ScheduleTask("b", 5), ScheduleTask("c", 1)])
    result = compare(baseline, now, calendar=WEEK)
    assert [c.id for c in result.slipped] == ["b", "a"]
    assert result.unchanged == 1


def test_a_weekend_counts_in_calendar_time_but_not_in_working_hours() -> None:
    friday = BaselineTask("a", utc(10, 9), utc(10, 16))
    monday = BaselineTask("a", utc(10, 9), utc(13, 10))
    result = compare(
        Baseline(MONDAY, utc(10, 16), (friday,)),
        Baseline(MONDAY, utc(13, 10), (monday,)),
        calendar=WEEK,
    )
    assert result.slipped[0].finish_change_hours == 2
    assert result.slipped[0].finish_change == timedelta(hours=66)
    assert result.finish_change_hours == 2


@given(nets(), st.data())
@settings(deadline=None, max_examples=100)
def test_comparing_a_baseline_with_itself_shows_no_change_and_changes_are_sorted_out(
    net: Net, data: st.DataObject
) -> None:
    baseline = freeze(net.schedule())
    same = compare(baseline, baseline, calendar=ALWAYS)
    assert same.slipped == same.pulled_in == same.new_tasks == same.removed_tasks == ()
    assert same.unchanged == len(net.tasks)
    assert same.finish_change_hours == 0
    # lengthen one task by 2 hours: it cannot finish earlier, and the project finish moves
    # by at most 2 hours (it may even move earlier: an FF into it and an SS out of it)
    grown_id = data.draw(st.sampled_from([t.id for t in net.tasks]))
    grown = Net(
        [
            replace(t, duration_hours=t.duration_hours + 2) if t.id == grown_id else t
            for t in net.tasks
        ]
    )
    current = freeze(grown.schedule())
    result = compare(baseline, current, calendar=ALWAYS)
    assert grown_id not in {c.id for c in result.pulled_in}
    assert result.finish_change_hours <= 2
    assert result.finish_change == timedelta(hours=result.finish_change_hours)
    assert all(c.finish_change > timedelta(0) for c in result.slipped)
    assert all(c.finish_change < timedelta(0) for c in result.pulled_in)
    assert len(result.slipped) + len(result.pulled_in) + result.unchanged == len(net.tasks)
    planned = {t.id: t.finish for t in baseline.tasks}
    moved = {t.id for t in current.tasks if t.finish != planned[t.id]}
    assert moved == {c.id for c in result.slipped + result.pulled_in}
