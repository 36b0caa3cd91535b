"""Monte Carlo forecast: agreement with CPM, percentiles, determinism, calibration, errors."""

from __future__ import annotations

import math
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planboard.domain.calendar import WorkingCalendar
from planboard.domain.errors import CycleDetected, ValidationFailed
from planboard.domain.forecast import (
    DEFAULT_SIGMA,
    DRAW_BLOCK_RUNS,
    MAX_MU,
    MAX_SIGMA,
    MIN_HISTORY_SAMPLES,
    DurationModel,
    Forecast,
    HistorySample,
    _Simulation,
    calibrate,
    default_models,
    forecast_project,
)
from planboard.domain.links import Dependency, Lag, LinkType
from planboard.domain.model import Complexity, TaskStatus
from planboard.domain.schedule import (
    ScheduleTask,
    SchedulingMode,
    compile_network,
    schedule_project,
)
from tests.unit.domain.strategies import ALWAYS, T0, Net, nets, random_network

WEEK = WorkingCalendar()
MONDAY = datetime(2025, 1, 6, 9, tzinfo=UTC)
EXACT = dict.fromkeys([*Complexity, None], DurationModel())  # no spread at all


def forecast(tasks: list[ScheduleTask], **kwargs: object) -> Forecast:
    options: dict[str, object] = {"calendar": ALWAYS, "project_start": T0} | kwargs
    return forecast_project(tasks, **options)  # type: ignore[arg-type]


# -- agreement with the deterministic schedule ---------------------------------------------


@given(nets(), st.integers(0, 2**32))
@settings(deadline=None, max_examples=150)
def test_without_spread_the_forecast_is_the_cpm_schedule(net: Net, seed: int) -> None:
    schedule = net.schedule()
    result = forecast(net.tasks, runs=7, seed=seed, models=EXACT)
    finish = result.project
    assert finish.p50_hours == finish.p85_hours == finish.p95_hours == schedule.duration_hours
    assert finish.p50 == finish.p95 == schedule.project_finish
    assert result.criticality == {t.id: float(t.critical) for t in schedule.tasks}


@given(nets(), st.integers(0, 2**32))
@settings(deadline=None, max_examples=60)
def test_every_run_matches_a_cpm_pass_over_its_drawn_durations(net: Net, seed: int) -> None:
    """The vectorised passes, run by run, against the scalar CPM on the same durations."""
    network = compile_network(net.tasks, calendar=ALWAYS, project_start=T0)
    simulation = _Simulation(network, default_models())
    blocks = np.random.SeedSequence(seed).spawn(1)
    runs = 5
    durations = simulation.durations(blocks, runs)
    ef = simulation.forward(durations)
    finish = ef.max(axis=0)
    counts = simulation.backward(durations, ef.copy(), finish)
    critical_counts = [0] * len(network.ids)
    for run in range(runs):
        drawn = [
            replace(t, duration_hours=float(durations[i, run])) for i, t in enumerate(network.tasks)
        ]
        scalar = schedule_project(drawn, calendar=ALWAYS, project_start=T0)
        assert finish[run] == pytest.approx(scalar.duration_hours, abs=1e-6)
        for i, t in enumerate(scalar.tasks):
            assert ef[i, run] == pytest.approx(t.early_finish_hours, abs=1e-6)
            critical_counts[i] += t.total_slack_hours <= 1e-6
    assert counts.tolist() == critical_counts


def test_a_bias_without_spread_scales_every_duration() -> None:
    tasks = random_network(60, random.Random(3))
    doubled = dict.fromkeys([*Complexity, None], DurationModel(mu=math.log(2)))
    result = forecast(tasks, runs=3, models=doubled)
    scaled = [replace(t, duration_hours=2 * t.duration_hours) for t in tasks]
    expected = schedule_project(scaled, calendar=ALWAYS, project_start=T0)
    assert result.project.p50_hours == pytest.approx(expected.duration_hours)
    assert result.criticality == {t.id: float(t.critical) for t in expected.tasks}


# -- percentiles, criticality, determinism -------------------------------------------------


@given(nets(), st.integers(0, 2**32), st.integers(1, 300))
@settings(deadline=None, max_examples=100)
def test_percentiles_are_monotone_and_bound_the_phases(net: Net, seed: int, runs: int) -> None:
    phased = [replace(t, phase=f"P{int(t.id[1:]) % 2}") for t in net.tasks]
    result = forecast(phased, runs=runs, seed=seed)
    finish = result.project
    assert finish.p50_hours <= finish.p85_hours <= finish.p95_hours
    assert finish.p50 <= finish.p85 <= finish.p95
    for phase in result.phases:
        assert phase.finish.p50_hours <= phase.finish.p85_hours <= phase.finish.p95_hours
        assert phase.finish.p50_hours <= finish.p50_hours
        assert phase.finish.p95_hours <= finish.p95_hours
    assert all(0 <= value <= 1 for value in result.criticality.values())
    assert set(result.criticality) == {t.id for t in net.tasks}


def test_the_same_seed_gives_the_same_forecast_whatever_the_chunking() -> None:
    tasks = random_network(300, random.Random(7))
    first = forecast(tasks, runs=500, seed=42)
    again = forecast(tasks, runs=500, seed=42)
    # a budget that fits one block of runs at a time
    chunked = forecast(tasks, runs=500, seed=42, memory_budget=2 * 8 * 300 * DRAW_BLOCK_RUNS)
    other = forecast(tasks, runs=500, seed=43)
    assert first == again == chunked
    assert other.project != first.project


def test_a_chain_is_always_critical_and_parallel_twins_share_it() -> None:
    tasks = [
        ScheduleTask("a", 8),
        ScheduleTask("left", 8, (Dependency("a"),)),
        ScheduleTask("right", 8, (Dependency("a"),)),
        ScheduleTask("z", 8, (Dependency("left"), Dependency("right"))),
    ]
    result = forecast(tasks, runs=4000, seed=1)
    assert result.criticality["a"] == result.criticality["z"] == 1.0
    assert result.criticality["left"] + result.criticality["right"] == pytest.approx(1.0)
    assert 0.45 < result.criticality["left"] < 0.55


def test_one_task_follows_its_lognormal() -> None:
    high = Complexity.HIGH
    result = forecast([ScheduleTask("a", 10, complexity=high)], runs=20_000, seed=5)
    sigma = DEFAULT_SIGMA[high]
    assert result.project.p50_hours == pytest.approx(10, rel=0.02)
    assert result.project.p85_hours == pytest.approx(10 * math.exp(1.0364 * sigma), rel=0.03)
    assert result.project.p95_hours == pytest.approx(10 * math.exp(1.6449 * sigma), rel=0.03)


def test_more_complex_tasks_spread_wider() -> None:
    def p95(complexity: Complexity) -> float:
        tasks = [ScheduleTask("a", 10, complexity=complexity)]
        return forecast(tasks, runs=2000, seed=3).project.p95_hours

    assert p95(Complexity.LOW) < p95(Complexity.MEDIUM) < p95(Complexity.HIGH)


def test_dates_come_from_the_calendar() -> None:
    result = forecast_project(
        [ScheduleTask("a", 16), ScheduleTask("b", 8, (Dependency("a", LinkType.FS, Lag(1)),))],
        calendar=WEEK,
        project_start=MONDAY,
        runs=5,
        models=EXACT,
    )
    assert result.project.p50_hours == 25
    assert result.project.p50 == datetime(2025, 1, 9, 10, tzinfo=UTC)


def test_phases_in_order_of_first_appearance() -> None:
    tasks = [
        ScheduleTask("b1", 4, phase="Build"),
        ScheduleTask("d1", 2, phase="Design"),
        ScheduleTask("b2", 8, (Dependency("d1"),), phase="Build"),
        ScheduleTask("loose", 1),
    ]
    result = forecast(tasks, runs=3, models=EXACT)
    assert [(p.name, p.finish.p50_hours) for p in result.phases] == [("Build", 10), ("Design", 2)]


def test_closed_and_finished_tasks_keep_their_durations() -> None:
    tasks = [
        ScheduleTask(
            "done",
            8,
            status=TaskStatus.DONE,
            actual_start=T0,
            actual_finish=T0 + timedelta(hours=30),
        ),
        ScheduleTask("next", 0, (Dependency("done"),)),
    ]
    result = forecast(tasks, runs=50, seed=9)
    assert result.project.p50_hours == result.project.p95_hours == 30
    assert result.criticality == {"done": 0.0, "next": 1.0}


def test_a_started_task_keeps_its_start_but_its_duration_varies() -> None:
    started = ScheduleTask(
        "a", 10, status=TaskStatus.IN_PROGRESS, actual_start=T0 + timedelta(hours=5)
    )
    result = forecast([started], runs=1000, seed=2)
    assert result.project.p50_hours == pytest.approx(15, rel=0.03)
    assert result.project.p95_hours > 16


def test_manual_mode_forecasts_own_starts_as_floors() -> None:
    tasks = [
        ScheduleTask("a", 4, planned_start=T0 + timedelta(hours=10)),
        ScheduleTask("b", 4, (Dependency("a"),), planned_start=T0),
    ]
    manual = forecast(tasks, runs=3, models=EXACT, mode=SchedulingMode.MANUAL)
    automatic = forecast(tasks, runs=3, models=EXACT)
    assert manual.project.p50_hours == 18
    assert automatic.project.p50_hours == 8


def test_an_empty_project_finishes_at_its_start() -> None:
    result = forecast([], runs=10)
    assert result.project.p50 == result.project.p95 == T0
    assert result.phases == ()
    assert result.criticality == {}


def test_cycles_are_refused() -> None:
    tasks = [ScheduleTask("a", 1, (Dependency("b"),)), ScheduleTask("b", 1, (Dependency("a"),))]
    with pytest.raises(CycleDetected):
        forecast(tasks)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"runs": 0}, "runs"),
        ({"runs": 100_001}, "runs"),
        ({"runs": True}, "runs"),
        ({"runs": 2.5}, "runs"),
        ({"seed": -1}, "seed"),
        ({"seed": "1"}, "seed"),
        ({"memory_budget": 0}, "memory_budget"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        forecast([ScheduleTask("a", 1)], **kwargs)
    assert caught.value.errors[0][0] == field


def test_ten_thousand_tasks_forecast() -> None:
    tasks = random_network(10_000, random.Random(11))
    result = forecast(tasks, runs=100, seed=1)
    assert len(result.criticality) == 10_000
    assert result.project.p50_hours <= result.project.p95_hours


# -- calibration from history --------------------------------------------------------------


def samples(ratios: list[float], complexity: Complexity | None = None) -> list[HistorySample]:
    return [HistorySample(10, 10 * r, complexity) for r in ratios]


def test_thin_history_keeps_the_defaults() -> None:
    assert calibrate(samples([2.0] * (MIN_HISTORY_SAMPLES - 1))) == default_models()
    assert calibrate([]) == default_models()


def test_a_class_with_enough_history_gets_its_own_fit() -> None:
    ratios = [math.exp(0.5), math.exp(0.1)] * (MIN_HISTORY_SAMPLES // 2)
    models = calibrate(samples(ratios, Complexity.HIGH))
    high = models[Complexity.HIGH]
    assert high.mu == pytest.approx(0.3)
    assert high.sigma == pytest.approx(0.2 * math.sqrt(20 / 19))
    assert high.samples == MIN_HISTORY_SAMPLES
    # the other classes keep their spread and take the pooled bias
    assert models[Complexity.LOW] == DurationModel(high.mu, DEFAULT_SIGMA[Complexity.LOW], 20)


def test_unusable_samples_are_skipped_and_sigma_is_capped() -> None:
    wild = samples([math.exp(5), math.exp(-5)] * 10, Complexity.LOW)
    junk = [
        HistorySample(0, 5),
        HistorySample(5, 0),
        HistorySample(-1, 5),
        HistorySample(float("nan"), 5),
        HistorySample(5, float("inf")),
    ]
    model = calibrate(wild + junk)[Complexity.LOW]
    assert model.samples == 20
    assert model.sigma == MAX_SIGMA


def test_history_moves_the_forecast() -> None:
    tasks = [ScheduleTask("a", 10, complexity=Complexity.MEDIUM)]
    slow = samples([2.0] * 25, Complexity.MEDIUM)  # always twice the estimate
    result = forecast(tasks, runs=200, history=slow)
    assert result.models[Complexity.MEDIUM] == DurationModel(math.log(2), 0.0, 25)
    assert result.project.p50_hours == pytest.approx(20)
    assert result.project.p95_hours == pytest.approx(20)


@pytest.mark.parametrize(
    ("mu", "sigma"),
    [(0, -1), (float("nan"), 1), (0, float("nan")), (MAX_MU + 1, 0), (0, MAX_SIGMA + 1)],
)
def test_duration_models_are_validated(mu: float, sigma: float) -> None:
    with pytest.raises(ValidationFailed) as caught:
        DurationModel(mu, sigma)
    assert caught.value.errors[0][0] == "model"


def test_a_wild_history_bias_is_capped() -> None:
    model = calibrate(samples([1e4] * 30))[None]
    assert model.mu == MAX_MU
