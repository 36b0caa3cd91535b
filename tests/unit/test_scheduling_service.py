"""The pure parts of services/scheduling.py: stored calendars and the days of a plan as
instants of a working calendar, stored tasks as the scheduler's tasks."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from planboard.domain.calendar import WorkingCalendar
from planboard.domain.errors import ValidationFailed
from planboard.domain.links import LagUnit, LinkType
from planboard.domain.schedule import SchedulingMode
from planboard.services import scheduling

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"]

calendars = st.builds(
    WorkingCalendar,
    weekdays=st.frozensets(st.integers(0, 6), min_size=1),
    hours_per_day=st.sampled_from([1.0, 4.0, 7.5, 8.0, 12.0, 24.0]),
    timezone=st.sampled_from(ZONES),
)
days = st.dates(min_value=date(2020, 1, 1), max_value=date(2035, 12, 31))


@given(calendars, days)
def test_a_day_starts_and_ends_inside_working_time(calendar, day):
    start, end = scheduling.day_start(calendar, day), scheduling.day_end(calendar, day)
    local_midnight = datetime.combine(day, datetime.min.time(), tzinfo=calendar.zone)
    # the start is the first working instant from the day on, the end where work stopped
    # by the end of the day: no working time between midnight and the start, or between
    # the end and the next midnight
    assert start >= local_midnight.astimezone(UTC)
    assert calendar.is_working_time(start)
    assert calendar.working_hours_between(local_midnight.astimezone(UTC), start) == 0
    next_midnight = (local_midnight + timedelta(days=1)).astimezone(UTC)
    assert end <= next_midnight
    assert calendar.working_hours_between(end, next_midnight) == 0


@given(calendars, days)
def test_a_working_day_holds_its_hours_between_start_and_end(calendar, day):
    if not calendar.is_working_day(day):
        return
    start, end = scheduling.day_start(calendar, day), scheduling.day_end(calendar, day)
    assert start.astimezone(calendar.zone).date() == day
    assert calendar.working_hours_between(start, end) == pytest.approx(
        calendar.hours_per_day, abs=1.01
    )  # within the hour a DST change can add or take


def test_a_stored_calendar_round_trips_and_names_bad_fields():
    stored = scheduling.calendar_doc(
        {"weekdays": [4, 0], "hours_per_day": 6, "holidays": ["2026-12-25"], "day_start": "07:30"}
    )
    assert stored == {
        "weekdays": [0, 4],
        "hours_per_day": 6.0,
        "holidays": ["2026-12-25"],
        "timezone": "UTC",
        "day_start": "07:30",
    }
    assert scheduling.calendar_doc(scheduling.calendar_out(scheduling.working_calendar(stored)))
    with pytest.raises(ValidationFailed) as caught:
        scheduling.calendar_doc({"timezone": "Nowhere/City", "hours_per_day": 25})
    fields = {name for name, _ in caught.value.errors}
    assert fields == {"calendar.timezone", "calendar.hours_per_day"}


def test_a_stored_task_as_the_scheduler_sees_it():
    calendar = WorkingCalendar()
    doc = {
        "_id": "t2",
        "status": "todo",
        "estimate_hours": 6.0,
        "blocked_by": ["t1", "t0"],
        "link_types": {"t1": {"type": "SS", "lag": 2.0, "lag_unit": "d"}},
        "start_date": "2026-11-03",
        "due_date": "2026-11-06",
    }
    auto = scheduling.schedule_task(doc, calendar, SchedulingMode.AUTOMATIC)
    assert [(d.predecessor, d.type, d.lag.amount, d.lag.unit) for d in auto.predecessors] == [
        ("t1", LinkType.SS, 2.0, LagUnit.DAYS),
        ("t0", LinkType.FS, 0.0, LagUnit.HOURS),  # no entry: FS without lag
    ]
    assert auto.duration_hours == 6.0
    assert auto.start_no_earlier_than == datetime(2026, 11, 3, 9, tzinfo=UTC)
    assert auto.planned_start is None
    manual = scheduling.schedule_task(doc, calendar, SchedulingMode.MANUAL)
    assert manual.start_no_earlier_than is None
    assert manual.planned_start == datetime(2026, 11, 3, 9, tzinfo=UTC)
    due_only = scheduling.schedule_task(
        {**doc, "start_date": None}, calendar, SchedulingMode.MANUAL
    )
    assert due_only.planned_finish == datetime(2026, 11, 6, 17, tzinfo=UTC)
    milestone = scheduling.schedule_task(
        {**doc, "milestone": True}, calendar, SchedulingMode.AUTOMATIC
    )
    assert milestone.duration_hours == 0.0


def test_stored_status_changes_become_history_samples_of_done_tasks():
    monday = datetime(2026, 3, 2, 9, tzinfo=UTC)  # default calendar: Mon-Fri 09:00-17:00 UTC
    rows = [
        ("a", "in_progress", monday.replace(tzinfo=None)),  # stored times are naive UTC
        ("a", "done", monday + timedelta(days=1, hours=4)),  # 12 working hours
        ("b", "in_progress", monday),
        ("b", "done", monday + timedelta(hours=2)),
        ("c", "in_progress", monday),
        ("c", "done", monday + timedelta(hours=3)),
        ("d", "done", monday + timedelta(hours=3)),  # never started: no duration
        ("e", "in_progress", monday),
        ("e", "done", monday + timedelta(hours=1)),
        ("x", "weird", monday),
        ("x", "done", "not a time"),
    ]
    changes = scheduling.status_history(rows)
    assert len(changes) == 9 and changes[0].at == monday
    spans = scheduling.work_spans(changes)
    docs = {
        "a": {"status": "done", "estimate_hours": 4, "complexity": "high"},
        "b": {"status": "done", "estimate_hours": 2.0},
        "c": {"status": "in_progress", "estimate_hours": 2.0},  # reopened
        "d": {"status": "done", "estimate_hours": 2.0},
        "e": {"status": "done"},  # no estimate
    }
    samples = scheduling.history_samples(spans, docs, WorkingCalendar())
    assert sorted(samples, key=lambda s: s.estimate_hours) == [
        scheduling.HistorySample(2.0, 2.0, None),
        scheduling.HistorySample(4.0, 12.0, scheduling.Complexity.HIGH),
    ]


def test_a_done_tasks_actual_span_pins_it_and_an_open_ones_does_not():
    calendar = WorkingCalendar()
    span = scheduling.WorkSpan(
        datetime(2026, 3, 2, 9, tzinfo=UTC), datetime(2026, 3, 3, tzinfo=UTC)
    )
    doc = {"_id": "t", "status": "done", "estimate_hours": 3}
    task = scheduling.schedule_task(doc, calendar, SchedulingMode.AUTOMATIC, span)
    assert (task.actual_start, task.actual_finish) == (span.started, span.finished)
    reopened = scheduling.schedule_task(
        {**doc, "status": "in_progress"}, calendar, SchedulingMode.MANUAL, span
    )
    assert (reopened.actual_start, reopened.actual_finish) == (None, None)
