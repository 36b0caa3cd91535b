"""CPM scheduling: the documented formulas, properties against brute force, modes and errors."""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planboard.domain.calendar import WorkingCalendar
from planboard.domain.errors import CycleDetected, ValidationFailed
from planboard.domain.links import Dependency, Lag, LagUnit, LinkType
from planboard.domain.model import TaskStatus
from planboard.domain.schedule import (
    Schedule,
    ScheduleTask,
    SchedulingMode,
    Violation,
    schedule_project,
)
from tests.unit.domain.strategies import (
    ALWAYS,
    T0,
    Net,
    calendars,
    instants,
    nets,
    random_network,
)

FS, SS, FF, SF = LinkType.FS, LinkType.SS, LinkType.FF, LinkType.SF
WEEK = WorkingCalendar()  # Mon-Fri 09:00-17:00 UTC
MONDAY = datetime(2025, 1, 6, 9, tzinfo=UTC)


def utc(day: int, hour: int, minute: int = 0) -> datetime:
    """January 2025 in UTC (the 6th is a Monday)."""
    return datetime(2025, 1, day, hour, minute, tzinfo=UTC)


def dep(predecessor: str, kind: LinkType = FS, lag: float = 0, unit: str = "h") -> Dependency:
    return Dependency(predecessor, kind, Lag(lag, LagUnit(unit)))


def task(task_id: str, hours: float, *deps: Dependency, **fields: object) -> ScheduleTask:
    return ScheduleTask(task_id, hours, tuple(deps), **fields)  # type: ignore[arg-type]


def plan(tasks: Sequence[ScheduleTask], **kwargs: object) -> Schedule:
    options: dict[str, object] = {"calendar": WEEK, "project_start": MONDAY} | kwargs
    return schedule_project(tasks, **options)  # type: ignore[arg-type]


# -- the formulas, by example ------------------------------------------------------------


def test_each_link_type_with_lag_as_documented() -> None:
    result = plan(
        [
            task("A", 16),
            task("B", 8, dep("A", FS, 1, "d")),  # ES(B) >= EF(A) + 8
            task("C", 4, dep("A", SS, 2)),  # ES(C) >= ES(A) + 2
            task("D", 8, dep("A", FF, -4)),  # EF(D) >= EF(A) - 4
            task("E", 8, dep("A", SF, 4)),  # EF(E) >= ES(A) + 4
        ]
    ).by_id()
    expected = {
        # id: early start, early finish, total slack, free slack
        "A": (utc(6, 9), utc(7, 17), 0, 0),
        "B": (utc(9, 9), utc(9, 17), 0, 0),
        "C": (utc(6, 11), utc(6, 15), 26, 26),
        "D": (utc(6, 13), utc(7, 13), 20, 20),
        "E": (utc(6, 9), utc(6, 17), 24, 24),
    }
    for task_id, (start, finish, total, free) in expected.items():
        got = result[task_id]
        assert (got.early_start, got.early_finish) == (start, finish), task_id
        assert (got.total_slack_hours, got.free_slack_hours) == (total, free), task_id
        assert got.critical == (total == 0)
    # late dates: LF(A) = min(LS(B) - 8, LS(C) - 2 + 16, LF(D) + 4, LF(E) - 4 + 16, 32) = 16
    assert result["A"].late_finish_hours == 16
    assert result["C"].late_start == utc(9, 13)
    assert result["C"].late_finish == utc(9, 17)


def test_project_dates_and_critical_path_by_dates() -> None:
    result = plan([task("A", 16), task("B", 8, dep("A")), task("C", 4, dep("A", SS))])
    assert result.project_start == MONDAY
    assert result.project_finish == utc(8, 17)
    assert result.duration_hours == 24
    assert result.critical_path == ("A", "B")
    assert result.violations == ()


def test_a_lead_overlaps_the_predecessor() -> None:
    result = plan([task("A", 16), task("B", 8, dep("A", FS, -4))]).by_id()
    assert result["B"].early_start == utc(7, 13)
    assert result["B"].early_finish == utc(8, 13)


def test_a_day_lag_uses_the_calendars_hours_per_day() -> None:
    short_days = WorkingCalendar(hours_per_day=7.5)
    result = plan([task("A", 7.5), task("B", 1, dep("A", FS, 2, "d"))], calendar=short_days).by_id()
    assert result["B"].early_start_hours == 7.5 + 15
    assert result["B"].early_start == utc(9, 9)


def test_milestones_happen_when_their_predecessor_finishes() -> None:
    result = plan(
        [
            task("Kickoff", 0),
            task("A", 8, dep("Kickoff")),
            task("Done", 0, dep("A")),
            task("B", 8, dep("Done")),
        ]
    ).by_id()
    assert result["Kickoff"].early_start == result["Kickoff"].early_finish == MONDAY
    assert result["Done"].early_start == result["Done"].early_finish == utc(6, 17)
    assert result["B"].early_start == utc(7, 9)
    assert result["Done"].critical


def test_a_weekend_project_start_moves_to_the_first_working_instant() -> None:
    saturday = datetime(2025, 1, 4, 12, tzinfo=UTC)
    result = plan([task("M", 0), task("A", 2)], project_start=saturday)
    assert result.project_start == MONDAY
    assert result.by_id()["M"].early_start == MONDAY
    assert result.by_id()["A"].early_finish == utc(6, 11)


def test_start_no_earlier_than_holds_a_task_back() -> None:
    result = plan([task("A", 4), task("B", 4, dep("A"), start_no_earlier_than=utc(8, 12))]).by_id()
    assert result["B"].early_start == utc(8, 12)
    assert result["A"].total_slack_hours == result["A"].free_slack_hours == 15


def test_dates_follow_local_time_across_dst() -> None:
    new_york = ZoneInfo("America/New_York")
    calendar = WorkingCalendar(timezone="America/New_York", holidays={date(2025, 3, 10)})
    start = datetime(2025, 3, 6, 9, tzinfo=new_york)  # Thursday, UTC-5
    result = plan(
        [task("A", 12), task("B", 8, dep("A", FS, 1, "d"))],
        calendar=calendar,
        project_start=start,
    ).by_id()
    assert result["A"].early_finish == datetime(2025, 3, 7, 13, tzinfo=new_york)
    # Monday is a holiday; Tuesday 13:00 is in UTC-4 after the change
    assert result["B"].early_start == datetime(2025, 3, 11, 13, tzinfo=new_york)
    assert result["B"].early_finish == datetime(2025, 3, 12, 13, tzinfo=new_york)


# -- facts, modes and what is left out -----------------------------------------------------


def test_actual_dates_pin_a_done_task_and_drive_its_dependents() -> None:
    done = task("A", 8, status=TaskStatus.DONE, actual_start=utc(6, 9), actual_finish=utc(8, 12))
    result = plan([done, task("B", 8, dep("A"))])
    by_id = result.by_id()
    assert (by_id["A"].early_start, by_id["A"].early_finish) == (utc(6, 9), utc(8, 12))
    assert by_id["A"].duration_hours == 19
    assert not by_id["A"].critical
    assert (by_id["A"].late_start, by_id["A"].late_finish) == (utc(6, 9), utc(8, 12))
    assert by_id["B"].early_start == utc(8, 12)
    assert result.critical_path == ("B",)


def test_a_started_task_keeps_its_actual_start() -> None:
    started = task("A", 16, status=TaskStatus.IN_PROGRESS, actual_start=utc(3, 9))
    result = plan([started, task("B", 4, dep("A"))]).by_id()
    assert result["A"].early_start == utc(3, 9)  # before the project start: a fact
    assert result["A"].early_finish == utc(6, 17)
    assert result["A"].early_start_hours == -8
    assert result["B"].early_start == utc(7, 9)


def test_a_done_task_without_actual_dates_is_scheduled_but_never_critical() -> None:
    result = plan([task("A", 8, status=TaskStatus.DONE), task("B", 8, dep("A"))]).by_id()
    assert result["B"].early_start == utc(7, 9)
    assert not result["A"].critical
    assert result["A"].total_slack_hours == 0
    assert result["B"].critical


def test_actual_dates_that_break_a_link_are_reported_in_automatic_mode() -> None:
    result = plan(
        [
            task("A", 16),
            task("B", 8, dep("A"), status=TaskStatus.IN_PROGRESS, actual_start=utc(7, 9)),
        ]
    )
    assert result.violations == (Violation("B", "A", FS, 0, 8),)
    assert result.by_id()["A"].total_slack_hours == -8
    assert result.by_id()["A"].critical


def test_manual_mode_keeps_the_tasks_dates_and_reports_broken_links() -> None:
    tasks = [
        task("A", 16, planned_start=utc(6, 9), planned_finish=utc(7, 17)),
        task("B", 8, dep("A", FS, 2), planned_start=utc(8, 9), planned_finish=utc(8, 17)),
        task("C", 4, dep("B")),  # no dates: as soon as B allows
        task("D", 4, dep("A", FF), planned_finish=utc(7, 15)),  # finish only
    ]
    result = plan(tasks, mode=SchedulingMode.MANUAL)
    by_id = result.by_id()
    assert result.mode is SchedulingMode.MANUAL
    assert (by_id["B"].early_start, by_id["B"].early_finish) == (utc(8, 9), utc(8, 17))
    assert by_id["C"].early_start == utc(9, 9)
    assert (by_id["D"].early_start, by_id["D"].early_finish) == (utc(7, 11), utc(7, 15))
    assert result.violations == (
        Violation("B", "A", FS, 2, 2),
        Violation("D", "A", FF, 0, 2),
    )
    automatic = plan(tasks).by_id()
    assert automatic["B"].early_start == utc(8, 11)
    assert automatic["D"].early_finish == utc(7, 17)


def test_cancelled_tasks_and_unknown_predecessors_constrain_nothing() -> None:
    result = plan(
        [
            task("A", 40, status=TaskStatus.CANCELLED),
            task("B", 8, dep("A"), dep("gone")),
        ]
    )
    assert [t.id for t in result.tasks] == ["B"]
    assert result.by_id()["B"].early_start == MONDAY


def test_an_empty_project_finishes_when_it_starts() -> None:
    result = plan([])
    assert result.project_finish == result.project_start == MONDAY
    assert result.tasks == result.critical_path == ()


def test_a_cycle_is_refused_naming_it() -> None:
    tasks = [task("a", 1, dep("c", SS)), task("b", 1, dep("a")), task("c", 1, dep("b", FF))]
    with pytest.raises(CycleDetected) as caught:
        plan(tasks)
    cycle = caught.value.cycle
    assert cycle[0] == cycle[-1]
    assert set(cycle) == {"a", "b", "c"}
    assert "dependency cycle" in caught.value.detail
    with pytest.raises(CycleDetected) as self_loop:
        plan([task("x", 1, dep("x", SS, 5))])
    assert self_loop.value.cycle == ["x", "x"]


@pytest.mark.parametrize(
    ("tasks", "field", "words"),
    [
        ([task("a", 1), task("a", 2)], "tasks", "duplicate task ids: a"),
        ([task("a", -1)], "duration_hours", "from 0 to 100000"),
        ([task("a", 100_001)], "duration_hours", "from 0 to 100000"),
        ([task("a", float("nan"))], "duration_hours", "from 0 to 100000"),
        ([task("a", True)], "duration_hours", "number of hours"),
        (
            [task("a", 1, actual_start=utc(7, 9), actual_finish=utc(6, 9))],
            "actual_finish",
            "finishes before it starts",
        ),
        (
            [task("a", 1, planned_start=utc(7, 9), planned_finish=utc(6, 9))],
            "planned_finish",
            "finishes before it starts",
        ),
    ],
)
def test_bad_tasks_are_refused_naming_the_field(
    tasks: list[ScheduleTask], field: str, words: str
) -> None:
    with pytest.raises(ValidationFailed) as caught:
        plan(tasks)
    assert caught.value.errors[0][0] == field
    assert words in caught.value.errors[0][1]


def test_ten_thousand_tasks() -> None:
    tasks = random_network(10_000, random.Random(19))
    result = plan(tasks)
    assert len(result.tasks) == 10_000
    assert result.critical_path
    assert all(t.total_slack_hours >= t.free_slack_hours >= 0 for t in result.tasks)
    assert result.violations == ()


# -- properties against brute force --------------------------------------------------------


def links_of(tasks: Sequence[ScheduleTask]) -> list[tuple[str, str, LinkType, float]]:
    return [(d.predecessor, t.id, d.type, d.lag.amount) for t in tasks for d in t.predecessors]


def brute_force(
    tasks: Sequence[ScheduleTask],
) -> tuple[dict[str, float], dict[str, float], float]:
    """Early starts and late finishes as fixed points of relaxing every link until stable."""
    d = {t.id: t.duration_hours for t in tasks}
    es = {
        t.id: 0.0
        if t.start_no_earlier_than is None
        else (t.start_no_earlier_than - T0) / timedelta(hours=1)
        for t in tasks
    }
    links = links_of(tasks)
    for _ in range(len(tasks) + 1):
        changed = False
        for p, s, kind, lag in links:
            bound = {
                FS: es[p] + d[p] + lag,
                SS: es[p] + lag,
                FF: es[p] + d[p] + lag - d[s],
                SF: es[p] + lag - d[s],
            }[kind]
            if bound > es[s]:
                es[s], changed = bound, True
        if not changed:
            break
    else:
        raise AssertionError("no fixed point: the graph has a cycle")
    finish = max(es[t] + d[t] for t in es)
    lf = dict.fromkeys(es, finish)
    for _ in range(len(tasks) + 1):
        changed = False
        for p, s, kind, lag in links:
            bound = {
                FS: lf[s] - d[s] - lag,
                SS: lf[s] - d[s] - lag + d[p],
                FF: lf[s] - lag,
                SF: lf[s] - lag + d[p],
            }[kind]
            if bound < lf[p]:
                lf[p], changed = bound, True
        if not changed:
            break
    return es, lf, finish


@given(nets())
@settings(deadline=None, max_examples=300)
def test_cpm_matches_the_brute_force_fixed_points(net: Net) -> None:
    result = net.schedule()
    es, lf, finish = brute_force(net.tasks)
    assert result.duration_hours == finish
    for t in result.tasks:
        assert t.early_start_hours == es[t.id]
        assert t.early_finish_hours == es[t.id] + t.duration_hours
        assert t.late_finish_hours == lf[t.id]
        assert t.late_start_hours == lf[t.id] - t.duration_hours
        assert t.total_slack_hours == lf[t.id] - es[t.id] - t.duration_hours
        assert t.early_start == T0 + timedelta(hours=es[t.id])


@given(nets())
@settings(deadline=None, max_examples=200)
def test_early_dates_meet_every_link_and_floor(net: Net) -> None:
    result = net.schedule()
    by_id = result.by_id()
    assert result.violations == ()
    for p, s, kind, lag in links_of(net.tasks):
        source = by_id[p].early_finish_hours if kind.from_finish else by_id[p].early_start_hours
        target = by_id[s].early_finish_hours if kind.to_finish else by_id[s].early_start_hours
        assert target >= source + lag
    for t in net.tasks:
        assert by_id[t.id].early_start >= (t.start_no_earlier_than or T0)


@given(nets())
@settings(deadline=None, max_examples=200)
def test_slack_invariants(net: Net) -> None:
    result = net.schedule()
    for t in result.tasks:
        assert t.total_slack_hours >= t.free_slack_hours >= 0
        assert t.critical == (t.total_slack_hours == 0)
        assert t.late_start >= t.early_start
    assert any(t.critical for t in result.tasks)


@given(nets())
@settings(deadline=None, max_examples=200)
def test_critical_tasks_form_chains_from_start_to_finish(net: Net) -> None:
    """Each critical task is driven by a floor or a critical predecessor over a tight link,
    and drives the finish or a critical successor over a tight link."""
    result = net.schedule()
    by_id = result.by_id()
    floors = {t.id: t.start_no_earlier_than or T0 for t in net.tasks}
    tight = []
    for p, s, kind, lag in links_of(net.tasks):
        source = by_id[p].early_finish_hours if kind.from_finish else by_id[p].early_start_hours
        target = by_id[s].early_finish_hours if kind.to_finish else by_id[s].early_start_hours
        if target == source + lag:
            tight.append((p, s))
    for t in result.tasks:
        if not t.critical:
            continue
        driven = t.early_start == floors[t.id] or any(
            s == t.id and by_id[p].critical for p, s in tight
        )
        drives = t.early_finish_hours == result.duration_hours or any(
            p == t.id and by_id[s].critical for p, s in tight
        )
        assert driven and drives, t.id
    starts = [by_id[i].early_start for i in result.critical_path]
    assert starts == sorted(starts)
    assert set(result.critical_path) == {t.id for t in result.tasks if t.critical}


@given(nets(), st.data())
@settings(deadline=None, max_examples=200)
def test_total_slack_is_how_far_a_task_can_slip_without_moving_the_finish(
    net: Net, data: st.DataObject
) -> None:
    result = net.schedule()
    chosen = data.draw(st.sampled_from(result.tasks))
    start = chosen.early_start_hours
    assert net.delayed(chosen.id, start + chosen.total_slack_hours).schedule().project_finish == (
        result.project_finish
    )
    later = net.delayed(chosen.id, start + chosen.total_slack_hours + 0.25).schedule()
    assert later.duration_hours == result.duration_hours + 0.25


@given(nets(), st.data())
@settings(deadline=None, max_examples=200)
def test_free_slack_is_how_far_a_task_can_slip_without_moving_anything_else(
    net: Net, data: st.DataObject
) -> None:
    result = net.schedule()
    chosen = data.draw(st.sampled_from(result.tasks))
    start = chosen.early_start_hours

    def others(schedule: Schedule) -> list[tuple[str, float, float]]:
        return [
            (t.id, t.early_start_hours, t.early_finish_hours)
            for t in schedule.tasks
            if t.id != chosen.id
        ] + [("finish", schedule.duration_hours, 0)]

    unmoved = net.delayed(chosen.id, start + chosen.free_slack_hours).schedule()
    assert others(unmoved) == others(result)
    moved = net.delayed(chosen.id, start + chosen.free_slack_hours + 0.25).schedule()
    assert others(moved) != others(result)


@given(nets())
@settings(deadline=None, max_examples=100)
def test_the_input_order_does_not_matter(net: Net) -> None:
    forward = net.schedule().by_id()
    backward = Net(list(reversed(net.tasks))).schedule().by_id()
    assert forward == backward


@given(nets(max_tasks=5), st.data())
@settings(deadline=None, max_examples=100)
def test_manual_mode_reports_exactly_the_links_the_dates_break(
    net: Net, data: st.DataObject
) -> None:
    """Each task gets arbitrary own dates; a link is reported iff its inequality fails."""
    dated = []
    for t in net.tasks:
        start = data.draw(st.integers(0, 80)) / 4
        dated.append(
            replace(
                t,
                planned_start=T0 + timedelta(hours=start),
                planned_finish=T0 + timedelta(hours=start + t.duration_hours),
            )
        )
    result = schedule_project(dated, calendar=ALWAYS, project_start=T0, mode=SchedulingMode.MANUAL)
    by_id = result.by_id()
    expected = []
    for t in dated:
        for d in t.predecessors:
            p = by_id[d.predecessor]
            s = by_id[t.id]
            source = p.early_finish_hours if d.type.from_finish else p.early_start_hours
            target = s.early_finish_hours if d.type.to_finish else s.early_start_hours
            if target < source + d.lag.amount:
                expected.append((t.id, d.predecessor, source + d.lag.amount - target))
    got = [(v.task, v.predecessor, v.shortfall_hours) for v in result.violations]
    assert sorted(got) == sorted(expected)
    for t in dated:
        assert by_id[t.id].early_start == t.planned_start


def test_brute_force_agrees_on_every_small_chain_shape() -> None:
    """All four link types between three tasks, each with a lead, none and a lag."""
    for kinds in itertools.product(LinkType, repeat=2):
        for lags in itertools.product((-3.0, 0.0, 2.0), repeat=2):
            tasks = [
                ScheduleTask("a", 4),
                ScheduleTask("b", 2, (Dependency("a", kinds[0], Lag(lags[0])),)),
                ScheduleTask("c", 5, (Dependency("b", kinds[1], Lag(lags[1])),)),
            ]
            result = Net(tasks).schedule().by_id()
            es, lf, _ = brute_force(tasks)
            assert {i: result[i].early_start_hours for i in es} == es
            assert {i: result[i].late_finish_hours for i in lf} == lf


def test_lengthening_a_task_between_ff_and_ss_links_can_shorten_the_project() -> None:
    """Reverse logic, as in MS Project: ES(i) = EF(p) - d(i) falls as d(i) grows."""

    def finish(hours: float) -> float:
        tasks = [
            task("p", 10),
            task("i", hours, dep("p", FF)),
            task("t", 10, dep("i", SS)),
        ]
        return plan(tasks, calendar=ALWAYS, project_start=T0).duration_hours

    assert finish(1) == 19
    assert finish(3) == 17


@given(
    calendars(),
    instants(),
    st.sampled_from(list(LinkType)),
    st.integers(0, 16).map(lambda q: q / 4),
    st.sampled_from(list(LagUnit)),
    st.integers(0, 40).map(lambda q: q / 4),
    st.integers(0, 40).map(lambda q: q / 4),
)
@settings(deadline=None, max_examples=200)
def test_lags_and_offsets_are_working_time_on_any_calendar(
    calendar: WorkingCalendar,
    start: datetime,
    kind: LinkType,
    amount: float,
    unit: LagUnit,
    before: float,
    after: float,
) -> None:
    lag = Lag(amount, unit)
    tasks = [task("p", before), task("s", after, Dependency("p", kind, lag))]
    result = schedule_project(tasks, calendar=calendar, project_start=start)
    p, s = result.by_id()["p"], result.by_id()["s"]
    source = p.early_finish if kind.from_finish else p.early_start
    target = s.early_finish if kind.to_finish else s.early_start
    gap = calendar.working_hours_between(source, target)
    lag_hours = lag.hours(calendar.hours_per_day)
    assert gap >= lag_hours
    if s.early_start_hours > 0:  # the link, not the project start, placed the successor
        assert gap == lag_hours
    for t in (p, s):
        assert calendar.working_hours_between(result.project_start, t.early_start) == (
            t.early_start_hours
        )
        assert calendar.working_hours_between(result.project_start, t.early_finish) == (
            t.early_finish_hours
        )
    assert result.project_start == calendar.next_working_instant(start)
