"""Working calendars: when work happens, and arithmetic in working hours.

A calendar names its working weekdays, the hours worked on each, holidays and an
IANA time zone. Each working day has one *working window* in local wall-clock time,
``[day start, day start + hours_per_day)``, that must end by midnight; the day start
is 09:00 unless set (or earlier when 09:00 + hours_per_day would pass midnight).

The window of a day runs from the first instant at which the local clock reads the
day start or later to the first instant at which it reads the window's end or later.
So a window stays put in local time when the UTC offset changes, and work is counted
in real elapsed time: a window that contains a DST change (only when it spans the
change's hour, e.g. a 24-hour calendar) is an hour shorter or longer that day.

Work amounts are *working hours*. A :class:`WorkTimeline` maps instants to positions
(microseconds of work since an anchor it picks) and back; everything else is built on
it. It indexes the calendar's working days in sorted lists (extended on demand,
doubling), so each operation is a binary search, never a walk over hours or days.
"""

from __future__ import annotations

import math
import threading
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import DomainError, ValidationFailed

MICROS_PER_HOUR = 3_600_000_000
DEFAULT_DAY_START = time(9)
DEFAULT_WEEKDAYS = frozenset(range(5))
# Furthest a timeline reaches from the first instant it was asked about, either way.
MAX_HORIZON_DAYS = 200 * 366

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
_DAY_US = 86_400_000_000
# The longest a window can be: 24 h plus a 2-hour DST change (Antarctica/Troll).
_MAX_DAY_US = 26 * MICROS_PER_HOUR
# Dates whose local midnight may not be representable in every zone are left out.
_MIN_ORDINAL = date.min.toordinal() + 2
_MAX_ORDINAL = date.max.toordinal() - 2
_MIN_GROWTH_DAYS = 64

_T = TypeVar("_T")


class WorkTimeOutOfRange(DomainError):
    """Working-time arithmetic went past what a calendar can represent."""


def hours_to_micros(hours: float) -> int:
    """Working hours as whole microseconds (the unit of timeline positions)."""
    return round(hours * MICROS_PER_HOUR)


def micros_to_hours(micros: int) -> float:
    """Microseconds of work as hours."""
    return micros / MICROS_PER_HOUR


def utc_micros(instant: datetime) -> int:
    """Microseconds since the Unix epoch of a timezone-aware instant."""
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"naive datetime {instant.isoformat()}: instants must be timezone-aware")
    return (instant - _EPOCH) // _ONE_US


def from_utc_micros(micros: int) -> datetime:
    """The UTC instant ``micros`` microseconds after the Unix epoch."""
    return _EPOCH + timedelta(microseconds=micros)


@dataclass(frozen=True, slots=True)
class WorkingCalendar:
    """Working weekdays (0 = Monday … 6 = Sunday), hours per day, holidays, time zone.

    Invalid values raise :class:`ValidationFailed` naming each bad field.
    ``weekdays`` and ``holidays`` accept any iterable and are kept as frozensets.
    """

    weekdays: frozenset[int] = DEFAULT_WEEKDAYS
    hours_per_day: float = 8.0
    holidays: frozenset[date] = frozenset()
    timezone: str = "UTC"
    day_start: time | None = None
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        errors: list[tuple[str, str]] = []
        weekdays = _frozen(self.weekdays, "weekdays", errors)
        holidays = _frozen(self.holidays, "holidays", errors)
        object.__setattr__(self, "weekdays", weekdays)
        object.__setattr__(self, "holidays", holidays)
        _check_weekdays(weekdays, errors)
        _check_holidays(holidays, errors)
        hours_ok = _check_hours(self.hours_per_day, errors)
        zone = _load_zone(self.timezone, errors)
        if hours_ok:
            _check_day_start(self.day_start, self.hours_per_day, errors)
        if errors:
            raise ValidationFailed(errors, "invalid working calendar: " + _summary(errors))
        assert zone is not None
        object.__setattr__(self, "_zone", zone)

    @property
    def zone(self) -> ZoneInfo:
        """The calendar's time zone."""
        return self._zone

    @property
    def window_start(self) -> time:
        """Local start of the working window: ``day_start``, or 09:00 moved earlier to fit."""
        if self.day_start is not None:
            return self.day_start
        latest = 24 * 60 - math.ceil(self.hours_per_day * 60)
        return min(DEFAULT_DAY_START, time(latest // 60, latest % 60))

    def is_working_day(self, day: date) -> bool:
        """Whether ``day`` is a working weekday and not a holiday."""
        return day.weekday() in self.weekdays and day not in self.holidays

    def days_to_hours(self, days: float) -> float:
        """A lag in working days as working hours (one working day = ``hours_per_day``)."""
        return days * self.hours_per_day

    def timeline(self) -> WorkTimeline:
        """The (shared, cached) timeline of this calendar."""
        return _timeline_for(self)

    def is_working_time(self, instant: datetime) -> bool:
        """Whether work happens at ``instant`` (windows include their start, not their end)."""
        return self.timeline().is_working(instant)

    def next_working_instant(self, instant: datetime) -> datetime:
        """``instant`` if it is working time, else the start of the next working window."""
        line = self.timeline()
        return line.start_instant(line.position(instant))

    def add_working_hours(self, instant: datetime, hours: float) -> datetime:
        """The instant ``hours`` working hours after ``instant`` (before it when negative).

        Forward, the answer is the earliest such instant (a window's end rather than
        the next window's start); backward, the latest (a window's start rather than
        the previous window's end). Adding zero returns ``instant`` unchanged, so
        ``add(add(t, h), -h) == t`` for any working instant ``t`` and ``h >= 0``.
        """
        if hours == 0:
            return instant
        line = self.timeline()
        target = line.position(instant) + hours_to_micros(hours)
        return line.finish_instant(target) if hours > 0 else line.start_instant(target)

    def working_hours_between(self, start: datetime, end: datetime) -> float:
        """Working hours from ``start`` to ``end``; negative when ``end`` is earlier."""
        line = self.timeline()
        return micros_to_hours(line.position(end) - line.position(start))


def _frozen(values: Iterable[_T], name: str, errors: list[tuple[str, str]]) -> frozenset[_T]:
    if isinstance(values, str | bytes):
        errors.append((name, "must be a collection, not a string"))
        return frozenset()
    try:
        return frozenset(values)
    except TypeError:
        errors.append((name, "must be a collection of values"))
        return frozenset()


def _check_weekdays(weekdays: frozenset[int], errors: list[tuple[str, str]]) -> None:
    if any(isinstance(d, bool) or not isinstance(d, int) or not 0 <= d <= 6 for d in weekdays):
        errors.append(("weekdays", "weekdays are integers from 0 (Monday) to 6 (Sunday)"))
    elif not weekdays:
        errors.append(("weekdays", "at least one working weekday is needed"))


def _check_holidays(holidays: frozenset[date], errors: list[tuple[str, str]]) -> None:
    if any(isinstance(day, datetime) or not isinstance(day, date) for day in holidays):
        errors.append(("holidays", "holidays are dates (no time of day)"))


def _check_hours(hours: float, errors: list[tuple[str, str]]) -> bool:
    if isinstance(hours, bool) or not isinstance(hours, int | float) or not math.isfinite(hours):
        errors.append(("hours_per_day", "must be a number of hours"))
        return False
    if not 0 < hours <= 24:
        errors.append(("hours_per_day", f"must be more than 0 and at most 24, not {hours:g}"))
        return False
    return True


def _load_zone(name: str, errors: list[tuple[str, str]]) -> ZoneInfo | None:
    if not isinstance(name, str) or not name:
        errors.append(("timezone", "must be an IANA time zone name such as Europe/Berlin"))
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        errors.append(("timezone", f"unknown time zone {name!r} (use an IANA name)"))
        return None


def _check_day_start(start: time | None, hours: float, errors: list[tuple[str, str]]) -> None:
    if start is None:
        return
    if not isinstance(start, time) or start.tzinfo is not None:
        errors.append(("day_start", "must be a local time of day without a time zone"))
        return
    start_minutes = start.hour * 60 + start.minute + start.second / 60
    if start_minutes + hours * 60 > 24 * 60:
        errors.append(
            (
                "day_start",
                f"a working day starting at {start.isoformat()} with {hours:g} hours "
                "would pass midnight",
            )
        )


def _summary(errors: list[tuple[str, str]]) -> str:
    return "; ".join(f"{name}: {message}" for name, message in errors)


@lru_cache(maxsize=64)
def _timeline_for(calendar: WorkingCalendar) -> WorkTimeline:
    return WorkTimeline(calendar)


@dataclass(frozen=True, slots=True)
class _Index:
    """Working windows of the dates ``[lo, hi)`` (ordinals), sorted, none empty.

    ``cum[i]`` is the work done before window ``i`` and ``cum_end[i]`` after it, both
    relative to the timeline's anchor; ``base`` is the work done before date ``lo`` and
    ``total_end`` before date ``hi``.
    """

    lo: int
    hi: int
    base: int
    starts: list[int]
    ends: list[int]
    cum: list[int]
    cum_end: list[int]

    total_end: int


class WorkTimeline:
    """Positions (microseconds of work since an anchor) of a calendar's instants.

    The anchor is the first date the timeline is asked about; positions are only
    meaningful relative to each other within one timeline. ``start_instant`` and
    ``finish_instant`` invert ``position`` at window boundaries in the two useful
    ways: where work resumes, and where it stopped. Safe to share between threads
    (the index is replaced whole when it grows).
    """

    def __init__(self, calendar: WorkingCalendar) -> None:
        self.calendar = calendar
        self._zone = calendar.zone
        start = calendar.window_start
        self._start_offset = timedelta(
            hours=start.hour, minutes=start.minute, seconds=start.second
        ) + timedelta(microseconds=start.microsecond)
        self._length = timedelta(microseconds=hours_to_micros(calendar.hours_per_day))
        self._anchor: int | None = None
        self._index: _Index | None = None
        self._grow_lock = threading.Lock()

    # -- public operations -------------------------------------------------------------

    def position(self, instant: datetime) -> int:
        """Work done (microseconds since the anchor) up to ``instant``.

        Constant outside working windows: an instant between windows has the position
        of the next window's start (and of the previous window's end).
        """
        micros = utc_micros(instant)
        index = self._covering_instant(micros)
        i = bisect_right(index.starts, micros) - 1
        if i < 0:
            return index.base
        return index.cum[i] + min(micros, index.ends[i]) - index.starts[i]

    def is_working(self, instant: datetime) -> bool:
        """Whether ``instant`` falls inside a working window."""
        micros = utc_micros(instant)
        index = self._covering_instant(micros)
        i = bisect_right(index.starts, micros) - 1
        return i >= 0 and micros < index.ends[i]

    def start_instant(self, position: int) -> datetime:
        """The latest instant at ``position``: where work resumes (a window's start at a gap)."""
        index = self._index
        if index is None or not index.base <= position < index.total_end:
            index = self._covering_position(position, finish=False)
        i = bisect_right(index.cum, position) - 1
        return from_utc_micros(index.starts[i] + position - index.cum[i])

    def finish_instant(self, position: int) -> datetime:
        """The earliest instant at ``position``: where work stopped (a window's end at a gap)."""
        index = self._index
        if index is None or not index.base < position <= index.total_end:
            index = self._covering_position(position, finish=True)
        i = bisect_left(index.cum_end, position)
        return from_utc_micros(index.starts[i] + position - index.cum[i])

    # -- the index -----------------------------------------------------------------

    def _covering_instant(self, micros: int) -> _Index:
        """An index whose dates surely hold every window near ``micros`` (±3 days)."""
        day = _EPOCH.toordinal() + micros // _DAY_US
        index = self._index
        if index is not None and index.lo + 3 <= day < index.hi - 3:
            return index
        with self._grow_lock:
            return self._ensure_dates(day - 3, day + 4)

    def _covering_position(self, position: int, *, finish: bool) -> _Index:
        index = self._index
        if index is None:
            raise ValueError("positions come from WorkTimeline.position of this timeline")
        while (forward := _growth_needed(index, position, finish=finish)) is not None:
            self._check_reachable(index, position, forward=forward)
            with self._grow_lock:
                index = self._grow(index, forward=forward)
        return index

    def _check_reachable(self, index: _Index, position: int, *, forward: bool) -> None:
        """Fail at once for a position no calendar could reach within the horizon."""
        anchor = self._anchor
        assert anchor is not None
        if forward:
            days_left = min(_MAX_ORDINAL, anchor + MAX_HORIZON_DAYS) - index.hi
            short = position - index.total_end
        else:
            days_left = index.lo - max(_MIN_ORDINAL, anchor - MAX_HORIZON_DAYS)
            short = index.base - position
        if short > days_left * _MAX_DAY_US:
            raise self._out_of_range(forward=forward)

    def _ensure_dates(self, lo: int, hi: int) -> _Index:
        index = self._index
        if index is None:
            self._anchor = lo
            index = _Index(lo, lo, 0, [], [], [], [], 0)
        while index.lo > lo:
            index = self._grow(index, forward=False, until=lo)
        while index.hi < hi:
            index = self._grow(index, forward=True, until=hi)
        return index

    def _grow(self, index: _Index, *, forward: bool, until: int | None = None) -> _Index:
        """Add at least ``max(64, span)`` days on one side (or up to ``until``)."""
        current = self._index
        if current is not None and current is not index and _contains(current, index):
            return current  # another thread grew it meanwhile
        step = max(_MIN_GROWTH_DAYS, index.hi - index.lo)
        anchor = self._anchor
        assert anchor is not None
        if forward:
            new_hi = max(index.hi + step, until or 0)
            if new_hi > min(_MAX_ORDINAL, anchor + MAX_HORIZON_DAYS):
                raise self._out_of_range(forward=True)
            grown = self._append(index, new_hi)
        else:
            new_lo = min(index.lo - step, until if until is not None else index.lo)
            if new_lo < max(_MIN_ORDINAL, anchor - MAX_HORIZON_DAYS):
                raise self._out_of_range(forward=False)
            grown = self._prepend(index, new_lo)
        self._index = grown
        return grown

    def _append(self, index: _Index, new_hi: int) -> _Index:
        starts, ends = self._windows(index.hi, new_hi)
        cum, cum_end = list(index.cum), list(index.cum_end)
        done = index.total_end
        for start, end in zip(starts, ends, strict=True):
            cum.append(done)
            done += end - start
            cum_end.append(done)
        return _Index(
            index.lo,
            new_hi,
            index.base,
            index.starts + starts,
            index.ends + ends,
            cum,
            cum_end,
            done,
        )

    def _prepend(self, index: _Index, new_lo: int) -> _Index:
        starts, ends = self._windows(new_lo, index.lo)
        base = index.base - sum(end - start for start, end in zip(starts, ends, strict=True))
        cum: list[int] = []
        cum_end: list[int] = []
        done = base
        for start, end in zip(starts, ends, strict=True):
            cum.append(done)
            done += end - start
            cum_end.append(done)
        return _Index(
            new_lo,
            index.hi,
            base,
            starts + index.starts,
            ends + index.ends,
            cum + index.cum,
            cum_end + index.cum_end,
            index.total_end,
        )

    def _windows(self, lo: int, hi: int) -> tuple[list[int], list[int]]:
        """Window bounds (UTC microseconds) of the working dates in ``[lo, hi)``."""
        starts: list[int] = []
        ends: list[int] = []
        calendar = self.calendar
        for ordinal in range(lo, hi):
            day = date.fromordinal(ordinal)
            if not calendar.is_working_day(day):
                continue
            midnight = datetime.combine(day, time())
            start = _first_instant_at(midnight + self._start_offset, self._zone)
            end = _first_instant_at(midnight + self._start_offset + self._length, self._zone)
            if end > start:
                starts.append(start)
                ends.append(end)
        return starts, ends

    def _out_of_range(self, *, forward: bool) -> WorkTimeOutOfRange:
        anchor = date.fromordinal(self._anchor or _MIN_ORDINAL).isoformat()
        way = "after" if forward else "before"
        return WorkTimeOutOfRange(
            f"working time reaches more than {MAX_HORIZON_DAYS // 366} years {way} {anchor} "
            "(or past the supported dates): check durations, lags, dates and the calendar"
        )


def _growth_needed(index: _Index, position: int, *, finish: bool) -> bool | None:
    """None if the index holds the window answering ``position``, else grow forward or not.

    A start instant needs a window with ``cum <= position < cum_end`` or a later one;
    a finish instant needs one with ``cum < position <= cum_end`` (``cum[0] == base``).
    """
    if finish:
        if position <= index.base:
            return False
        return True if position > index.total_end else None
    if position < index.base:
        return False
    return True if position >= index.total_end else None


def _contains(outer: _Index, inner: _Index) -> bool:
    return outer.lo <= inner.lo and outer.hi >= inner.hi and outer is not inner


def _local(micros: int, zone: ZoneInfo) -> datetime:
    return from_utc_micros(micros).astimezone(zone).replace(tzinfo=None)


def _first_instant_at(wall: datetime, zone: ZoneInfo) -> int:
    """The first instant whose local reading is ``wall`` or later (UTC microseconds).

    An existing reading maps to its instant (the first one when the clock falls back);
    a reading skipped by a forward jump maps to the instant of the jump.
    """
    first = utc_micros(wall.replace(tzinfo=zone))
    if _local(first, zone) == wall:
        return first
    other = utc_micros(wall.replace(tzinfo=zone, fold=1))
    before, after = min(first, other), max(first, other)
    # local(before) < wall <= local(after): bisect for the jump
    while after - before > 1:
        middle = (before + after) // 2
        if _local(middle, zone) >= wall:
            after = middle
        else:
            before = middle
    return after
