"""Working calendars: validation, working-hour arithmetic, DST and holidays, against brute force."""

from __future__ import annotations

import time as clock
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from planboard.domain.calendar import (
    WorkingCalendar,
    WorkTimeOutOfRange,
    hours_to_micros,
    utc_micros,
)
from planboard.domain.errors import ValidationFailed
from tests.unit.domain.strategies import calendars, instants

NY = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
MINUTE = timedelta(minutes=1)


def ny(*args: int) -> datetime:
    return datetime(*args, tzinfo=NY)  # type: ignore[misc]


# -- validation ----------------------------------------------------------------------


def fields_of(error: ValidationFailed) -> set[str]:
    return {name for name, _ in error.errors}


@pytest.mark.parametrize(
    ("kwargs", "field", "words"),
    [
        ({"weekdays": []}, "weekdays", "at least one working weekday"),
        ({"weekdays": [7]}, "weekdays", "0 (Monday) to 6 (Sunday)"),
        ({"weekdays": [True]}, "weekdays", "0 (Monday) to 6 (Sunday)"),
        ({"weekdays": "0123"}, "weekdays", "not a string"),
        ({"weekdays": 5}, "weekdays", "collection"),
        ({"hours_per_day": 0}, "hours_per_day", "more than 0 and at most 24"),
        ({"hours_per_day": -3}, "hours_per_day", "more than 0 and at most 24"),
        ({"hours_per_day": 24.5}, "hours_per_day", "more than 0 and at most 24"),
        ({"hours_per_day": float("nan")}, "hours_per_day", "number of hours"),
        ({"hours_per_day": True}, "hours_per_day", "number of hours"),
        ({"timezone": "Mars/Olympus_Mons"}, "timezone", "unknown time zone"),
        ({"timezone": "../../etc/passwd"}, "timezone", "unknown time zone"),
        ({"timezone": ""}, "timezone", "IANA"),
        ({"holidays": [datetime(2025, 1, 1, tzinfo=UTC)]}, "holidays", "dates"),
        ({"holidays": ["2025-01-01"]}, "holidays", "dates"),
        ({"day_start": time(17), "hours_per_day": 8}, "day_start", "pass midnight"),
        ({"day_start": time(9, tzinfo=UTC)}, "day_start", "without a time zone"),
    ],
)
def test_invalid_calendars_name_the_field(
    kwargs: dict[str, object], field: str, words: str
) -> None:
    with pytest.raises(ValidationFailed) as caught:
        WorkingCalendar(**kwargs)  # type: ignore[arg-type]
    assert fields_of(caught.value) == {field}
    assert any(words in message for _, message in caught.value.errors)
    assert field in caught.value.detail


def test_every_bad_field_is_reported_at_once() -> None:
    with pytest.raises(ValidationFailed) as caught:
        WorkingCalendar(weekdays=[], hours_per_day=30, timezone="Nowhere/City")
    assert fields_of(caught.value) == {"weekdays", "hours_per_day", "timezone"}


def test_collections_are_kept_as_frozensets_and_calendars_are_values() -> None:
    calendar = WorkingCalendar(weekdays=[0, 1, 1], holidays=[date(2025, 1, 1)])
    assert calendar.weekdays == frozenset({0, 1})
    assert calendar == WorkingCalendar(weekdays={1, 0}, holidays={date(2025, 1, 1)})
    assert hash(calendar) == hash(WorkingCalendar(weekdays={1, 0}, holidays={date(2025, 1, 1)}))


@pytest.mark.parametrize(
    ("hours", "start"),
    [(8, time(9)), (7.5, time(9)), (15, time(9)), (16, time(8)), (20, time(4)), (24, time(0))],
)
def test_the_default_window_starts_at_nine_or_early_enough_to_end_by_midnight(
    hours: float, start: time
) -> None:
    assert WorkingCalendar(hours_per_day=hours).window_start == start


def test_a_working_day_lag_is_hours_per_day() -> None:
    assert WorkingCalendar(hours_per_day=7.5).days_to_hours(2) == 15
    assert WorkingCalendar().days_to_hours(-0.5) == -4


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        WorkingCalendar().add_working_hours(datetime(2025, 1, 1, 12), 1)


# -- examples ------------------------------------------------------------------------

WEEK = WorkingCalendar(timezone="America/New_York")  # Mon-Fri 09:00-17:00


@pytest.mark.parametrize(
    ("start", "hours", "end"),
    [
        (ny(2025, 1, 6, 9), 8, ny(2025, 1, 6, 17)),  # a whole Monday, ending at 17:00
        (ny(2025, 1, 6, 9), 9, ny(2025, 1, 7, 10)),  # overnight
        (ny(2025, 1, 10, 16), 2, ny(2025, 1, 13, 10)),  # over the weekend
        (ny(2025, 1, 11, 12), 1, ny(2025, 1, 13, 10)),  # from a Saturday
        (ny(2025, 1, 6, 20), 0.5, ny(2025, 1, 7, 9, 30)),  # from the evening
        (ny(2025, 1, 13, 10), -2, ny(2025, 1, 10, 16)),  # backwards over the weekend
        (ny(2025, 1, 7, 17), -8, ny(2025, 1, 7, 9)),  # back to a window's start
        (ny(2025, 1, 6, 9), 40, ny(2025, 1, 10, 17)),  # a working week
    ],
)
def test_add_working_hours_examples(start: datetime, hours: float, end: datetime) -> None:
    assert WEEK.add_working_hours(start, hours) == end
    assert WEEK.working_hours_between(start, end) == hours


def test_adding_zero_returns_the_instant_itself() -> None:
    saturday = ny(2025, 1, 11, 12)
    assert WEEK.add_working_hours(saturday, 0) is saturday


def test_windows_include_their_start_and_exclude_their_end() -> None:
    assert WEEK.is_working_time(ny(2025, 1, 6, 9))
    assert WEEK.is_working_time(ny(2025, 1, 6, 16, 59))
    assert not WEEK.is_working_time(ny(2025, 1, 6, 17))
    assert not WEEK.is_working_time(ny(2025, 1, 11, 12))
    assert WEEK.next_working_instant(ny(2025, 1, 6, 17)) == ny(2025, 1, 7, 9)
    assert WEEK.next_working_instant(ny(2025, 1, 6, 10)) == ny(2025, 1, 6, 10)


def test_holidays_are_skipped() -> None:
    calendar = WorkingCalendar(timezone="America/New_York", holidays={date(2025, 7, 4)})
    thursday = ny(2025, 7, 3, 16)
    assert calendar.add_working_hours(thursday, 2) == ny(2025, 7, 7, 10)
    assert calendar.working_hours_between(thursday, ny(2025, 7, 7, 10)) == 2
    assert not calendar.is_working_time(ny(2025, 7, 4, 12))


def test_working_hours_between_is_signed() -> None:
    a, b = ny(2025, 1, 6, 9), ny(2025, 1, 8, 13)
    assert WEEK.working_hours_between(a, b) == 20
    assert WEEK.working_hours_between(b, a) == -20
    assert WEEK.working_hours_between(ny(2025, 1, 11), ny(2025, 1, 12)) == 0


def test_instants_in_other_zones_are_the_same_instants() -> None:
    start = ny(2025, 1, 10, 16).astimezone(UTC)
    assert WEEK.add_working_hours(start, 2) == ny(2025, 1, 13, 10)


def test_windows_stay_in_local_time_across_a_spring_forward() -> None:
    # 2025-03-09: New York moves from UTC-5 to UTC-4; the window is 09:00 local either side
    friday = ny(2025, 3, 7, 16)
    monday = WEEK.add_working_hours(friday, 2)
    assert monday == ny(2025, 3, 10, 10)
    assert monday.astimezone(UTC).hour == 14  # would be 15 if the window stayed in UTC
    assert WEEK.add_working_hours(monday, -2) == friday


def test_windows_stay_in_local_time_across_a_fall_back() -> None:
    calendar = WorkingCalendar(timezone="Europe/Berlin")
    friday = datetime(2025, 10, 24, 16, tzinfo=BERLIN)
    assert calendar.add_working_hours(friday, 2) == datetime(2025, 10, 27, 10, tzinfo=BERLIN)


def test_a_window_over_a_dst_change_is_an_hour_shorter_or_longer() -> None:
    always = WorkingCalendar(weekdays=range(7), hours_per_day=24, timezone="America/New_York")
    assert always.working_hours_between(ny(2025, 3, 9), ny(2025, 3, 10)) == 23
    assert always.working_hours_between(ny(2025, 11, 2), ny(2025, 11, 3)) == 25
    assert always.working_hours_between(ny(2025, 3, 10), ny(2025, 3, 11)) == 24


def test_a_window_starting_in_a_skipped_hour_starts_at_the_jump() -> None:
    # 02:30 does not exist on 2025-03-09 in New York: the clock jumps from 02:00 to 03:00
    night = WorkingCalendar(
        weekdays=range(7), hours_per_day=1, day_start=time(2, 30), timezone="America/New_York"
    )
    midnight = ny(2025, 3, 9)
    assert night.next_working_instant(midnight) == ny(2025, 3, 9, 3)
    assert night.working_hours_between(midnight, ny(2025, 3, 9, 4)) == 0.5
    assert night.add_working_hours(midnight, 1) == ny(2025, 3, 10, 3)


def test_a_window_starting_in_a_repeated_hour_starts_at_its_first_occurrence() -> None:
    # 01:30 happens twice on 2025-11-02 in New York (EDT, then EST)
    night = WorkingCalendar(
        weekdays=range(7), hours_per_day=1, day_start=time(1, 30), timezone="America/New_York"
    )
    first = datetime(2025, 11, 2, 5, 30, tzinfo=UTC)  # 01:30 EDT
    assert night.next_working_instant(ny(2025, 11, 2)) == first
    # the window ends when the clock first reads 02:30 (EST): the repeated hour is worked
    assert night.working_hours_between(ny(2025, 11, 2), ny(2025, 11, 2, 3)) == 2


def test_decades_of_work_take_no_per_hour_loop() -> None:
    began = clock.perf_counter()
    end = WEEK.add_working_hours(ny(2025, 1, 6, 9), 8 * 260 * 40)  # ~40 years of working days
    assert WEEK.working_hours_between(ny(2025, 1, 6, 9), end) == 8 * 260 * 40
    assert end.year in (2064, 2065)
    assert clock.perf_counter() - began < 10


def test_unreachable_work_fails_fast_with_a_domain_error() -> None:
    began = clock.perf_counter()
    with pytest.raises(WorkTimeOutOfRange, match="200 years"):
        WEEK.add_working_hours(ny(2025, 1, 6, 9), 1e9)
    with pytest.raises(WorkTimeOutOfRange, match="before"):
        WEEK.add_working_hours(ny(2025, 1, 6, 9), -1e9)
    assert clock.perf_counter() - began < 5


def test_timelines_are_shared_and_positions_consistent() -> None:
    line = WEEK.timeline()
    assert WorkingCalendar(timezone="America/New_York").timeline() is line
    monday = ny(2025, 1, 6, 9)
    assert line.position(ny(2025, 1, 6, 17)) - line.position(monday) == hours_to_micros(8)
    # a far instant grows the index; earlier positions do not move
    before = line.position(monday)
    line.position(ny(2040, 1, 1))
    line.position(ny(2001, 1, 1))
    assert line.position(monday) == before


# -- properties ----------------------------------------------------------------------

quarter_hours = st.integers(-4 * 120, 4 * 120).map(lambda q: q / 4)


@given(calendars(), instants(), quarter_hours)
@settings(deadline=None)
def test_hours_between_an_instant_and_it_plus_h_is_h(
    calendar: WorkingCalendar, start: datetime, hours: float
) -> None:
    assert calendar.working_hours_between(start, calendar.add_working_hours(start, hours)) == hours


@given(calendars(), instants(), quarter_hours)
@settings(deadline=None)
def test_adding_then_subtracting_returns_a_working_instant(
    calendar: WorkingCalendar, start: datetime, hours: float
) -> None:
    hours = abs(hours)
    working = calendar.next_working_instant(start)
    assert calendar.is_working_time(working)
    assert calendar.add_working_hours(calendar.add_working_hours(working, hours), -hours) == working
    # the mirror image holds for an instant where work stopped (a finish)
    stopped = calendar.add_working_hours(start, 0.25)
    assert calendar.add_working_hours(calendar.add_working_hours(stopped, -hours), hours) == stopped


@given(calendars(), instants(), quarter_hours, quarter_hours)
@settings(deadline=None)
def test_add_is_monotone_in_the_hours(
    calendar: WorkingCalendar, start: datetime, a: float, b: float
) -> None:
    low, high = sorted((a, b))
    assert calendar.add_working_hours(start, low) <= calendar.add_working_hours(start, high)


@given(calendars(), instants(), instants(), quarter_hours)
@settings(deadline=None)
def test_add_is_monotone_in_the_instant(
    calendar: WorkingCalendar, a: datetime, b: datetime, hours: float
) -> None:
    early, late = sorted((a, b))
    assert calendar.add_working_hours(early, hours) <= calendar.add_working_hours(late, hours)


@given(calendars(), instants(), quarter_hours)
@settings(deadline=None)
def test_results_lie_in_working_time(
    calendar: WorkingCalendar, start: datetime, hours: float
) -> None:
    assume(hours != 0)
    result = calendar.add_working_hours(start, hours)
    if hours < 0:
        assert calendar.is_working_time(result)  # a start: work resumes here
    else:
        assert calendar.is_working_time(result - timedelta(microseconds=1))  # work stopped here


@cache
def brute_window(calendar: WorkingCalendar, day: date) -> tuple[datetime, datetime] | None:
    """The day's window found by scanning minutes for the first local reading >= start/end."""
    if day.weekday() not in calendar.weekdays or day in calendar.holidays:
        return None
    wall_start = datetime.combine(day, calendar.window_start)
    wall_end = wall_start + timedelta(hours=calendar.hours_per_day)

    def first_at(wall: datetime) -> datetime:
        instant = datetime.combine(wall.date(), wall.time(), UTC) - timedelta(hours=15)
        while instant.astimezone(calendar.zone).replace(tzinfo=None) < wall:
            instant += MINUTE
        return instant

    start, end = first_at(wall_start), first_at(wall_end)
    return (start, end) if end > start else None


def brute_minutes(calendar: WorkingCalendar, start: datetime, end: datetime) -> int:
    """Working minutes in [start, end) by checking every minute against the scanned windows."""
    windows = [
        window
        for offset in range(-2, (end - start).days + 3)
        if (window := brute_window(calendar, start.date() + timedelta(days=offset))) is not None
    ]
    count = 0
    instant = start
    while instant < end:
        count += any(a <= instant < b for a, b in windows)
        instant += MINUTE
    return count


@given(calendars(), instants(), st.integers(0, 3 * 24 * 60))
@settings(deadline=None, max_examples=60)
def test_working_hours_match_a_minute_by_minute_count(
    calendar: WorkingCalendar, start: datetime, minutes: int
) -> None:
    end = start + timedelta(minutes=minutes)
    assert calendar.working_hours_between(start, end) == brute_minutes(calendar, start, end) / 60


@given(calendars(), instants())
@settings(deadline=None, max_examples=60)
def test_is_working_time_matches_the_scanned_windows(
    calendar: WorkingCalendar, instant: datetime
) -> None:
    expected = brute_minutes(calendar, instant, instant + MINUTE) == 1
    assert calendar.is_working_time(instant) == expected


def test_positions_are_microseconds() -> None:
    line = WEEK.timeline()
    a = ny(2025, 1, 6, 9)
    assert line.position(a + timedelta(microseconds=7)) - line.position(a) == 7
    assert utc_micros(datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)) == 1_000_000
