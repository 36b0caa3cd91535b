"""Hypothesis strategies shared by the domain tests: calendars, instants, networks, plans."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta

from hypothesis import strategies as st

from planboard.domain.calendar import WorkingCalendar
from planboard.domain.links import MAX_LAG, Dependency, Lag, LagUnit, LinkType
from planboard.domain.model import (
    ChecklistItem,
    Complexity,
    PlanDocument,
    PlanPhase,
    PlanTask,
    Priority,
    TaskStatus,
)
from planboard.domain.schedule import Schedule, ScheduleTask, schedule_project

ZONES = [
    "UTC",
    "America/New_York",
    "Europe/Berlin",
    "Australia/Lord_Howe",  # 30-minute DST shift
    "America/Santiago",  # DST changes at midnight
    "Asia/Kolkata",  # +05:30, no DST
    "Pacific/Chatham",  # +12:45 / +13:45
]
# dates near DST changes of the zones above, to land on them often
NEAR_CHANGES = [
    date(2025, 3, 9),
    date(2025, 11, 2),
    date(2025, 3, 30),
    date(2025, 10, 26),
    date(2025, 4, 6),
    date(2025, 10, 5),
    date(2025, 9, 7),
    date(2025, 9, 28),
    date(2025, 7, 1),
]


@st.composite
def calendars(draw: st.DrawFn) -> WorkingCalendar:
    quarters = draw(st.integers(1, 96))  # hours per day in quarter hours
    start_quarter = draw(st.one_of(st.none(), st.integers(0, 96 - quarters)))
    day_start = (
        None
        if start_quarter is None
        else (datetime.min + timedelta(minutes=15 * start_quarter)).time()
    )
    holidays = draw(st.frozensets(st.dates(date(2025, 2, 20), date(2025, 11, 15)), max_size=20))
    return WorkingCalendar(
        weekdays=draw(st.frozensets(st.integers(0, 6), min_size=1)),
        hours_per_day=quarters / 4,
        holidays=holidays,
        timezone=draw(st.sampled_from(ZONES)),
        day_start=day_start,
    )


@st.composite
def instants(draw: st.DrawFn) -> datetime:
    """Whole-minute UTC instants, often within days of a DST change."""
    day = draw(st.sampled_from(NEAR_CHANGES))
    minutes = draw(st.integers(-4 * 24 * 60, 4 * 24 * 60))
    return datetime.combine(day, time(), UTC) + timedelta(minutes=minutes)


ALWAYS = WorkingCalendar(weekdays=range(7), hours_per_day=24)  # working hours = real hours
T0 = datetime(2025, 1, 1, tzinfo=UTC)
quarters = st.integers(-40, 40).map(lambda q: q / 4)


@dataclass
class Net:
    tasks: list[ScheduleTask]

    def schedule(self) -> Schedule:
        return schedule_project(self.tasks, calendar=ALWAYS, project_start=T0)

    def delayed(self, task_id: str, start_hours: float) -> Net:
        """The same network with ``task_id`` held back to start at ``start_hours``."""
        floor = T0 + timedelta(hours=start_hours)
        return Net(
            [replace(t, start_no_earlier_than=floor) if t.id == task_id else t for t in self.tasks]
        )


@st.composite
def nets(draw: st.DrawFn, max_tasks: int = 7) -> Net:
    """Random DAGs (links only to lower ranks), all link types, signed lags, some floors."""
    n = draw(st.integers(1, max_tasks))
    tasks = []
    for i in range(n):
        preds = draw(st.lists(st.integers(0, i - 1), unique=True, max_size=3)) if i else []
        deps = tuple(
            Dependency(f"t{p}", draw(st.sampled_from(list(LinkType))), Lag(draw(quarters)))
            for p in preds
        )
        floor = draw(st.one_of(st.none(), st.integers(0, 40)))
        tasks.append(
            ScheduleTask(
                f"t{i}",
                draw(st.one_of(st.just(0.0), st.integers(1, 40).map(lambda q: q / 4))),
                deps,
                start_no_earlier_than=None if floor is None else T0 + timedelta(hours=floor / 4),
            )
        )
    return Net(draw(st.permutations(tasks)))


def random_network(n: int, rng: random.Random) -> list[ScheduleTask]:
    tasks = []
    for i in range(n):
        preds = rng.sample(range(max(0, i - 50), i), min(i, rng.randint(0, 3)))
        deps = [
            Dependency(f"t{p}", rng.choice(list(LinkType)), Lag(rng.choice([0, 0, 4, -2])))
            for p in preds
        ]
        tasks.append(ScheduleTask(f"t{i}", rng.choice([0, 2, 4, 8, 16]), tuple(deps)))
    return tasks


# --------------------------------------------------------------------------- plan documents

# Text a title may hold (domain/text.py: no control characters but the tab), with the
# pieces of Markdown the parser treats specially mixed in: comment markers, escapes of
# them, backticks (code spans).
TITLE_CHARACTERS = st.characters(exclude_categories=["Cs", "Cc"], include_characters="\t")
MARKUP = st.sampled_from(["", "<!--", "-->", "<!-->", "<\\!--", "<\\\\!--", "`", "``", "\\"])
one_line = st.builds(
    lambda *parts: "".join(parts).strip(),
    st.text(TITLE_CHARACTERS, max_size=10),
    MARKUP,
    st.text(TITLE_CHARACTERS, max_size=10),
    MARKUP,
).filter(bool)
estimates = st.none() | st.integers(0, 1_000_000).map(lambda cents: cents / 100)
# signed lags in hours and days: common small ones, and any with four decimals up to the limit
lags = st.builds(
    Lag,
    st.sampled_from([0, 2, -4, 0.5, -0.0001])
    | st.integers(-int(MAX_LAG) * 10_000, int(MAX_LAG) * 10_000).map(lambda n: n / 10_000),
    st.sampled_from(LagUnit),
)


@st.composite
def plan_documents(draw: st.DrawFn) -> PlanDocument:
    """Documents with unicode text, random statuses, random acyclic typed dependencies
    (all four link types, signed lags in h and d) and the scheduling fields: priority,
    start and due dates (start <= due), milestones (no estimate but 0; one day)."""
    shape = draw(st.lists(st.integers(0, 4), min_size=1, max_size=4).filter(any))
    refs = [f"T{p + 1}.{t + 1}" for p, size in enumerate(shape) for t in range(size)]
    rank = dict(zip(refs, draw(st.permutations(range(len(refs)))), strict=True))
    names = draw(st.lists(one_line, min_size=len(shape), max_size=len(shape), unique=True))

    def task(ref: str) -> PlanTask:
        earlier = [other for other in refs if rank[other] < rank[ref]]
        predecessors = draw(st.lists(st.sampled_from(earlier), unique=True)) if earlier else []
        milestone = draw(st.booleans())
        start = draw(st.none() | st.dates())
        due = draw(st.none() | st.dates(min_value=start or date.min))
        if milestone and start is not None and due is not None:
            due = start
        return PlanTask(
            ref=ref,
            title=draw(one_line),
            status=draw(st.sampled_from(TaskStatus)),
            complexity=draw(st.none() | st.sampled_from(Complexity)),
            estimate_hours=draw(st.none() | st.just(0.0)) if milestone else draw(estimates),
            checklist=tuple(
                draw(st.lists(st.builds(ChecklistItem, one_line, st.booleans()), max_size=4))
            ),
            links=tuple(
                Dependency(p, draw(st.sampled_from(LinkType)), draw(lags)) for p in predecessors
            ),
            priority=draw(st.none() | st.sampled_from(Priority)),
            start=start,
            due=due,
            milestone=milestone,
        )

    phases = tuple(
        PlanPhase(
            name=names[p],
            estimate_hours=draw(estimates),
            tasks=tuple(task(f"T{p + 1}.{t + 1}") for t in range(size)),
        )
        for p, size in enumerate(shape)
    )
    return PlanDocument(
        name=draw(one_line),
        description=draw(st.just("") | one_line),
        phases=phases,
        target_users=draw(st.none() | one_line),
        project_type=draw(st.none() | one_line),
    )
