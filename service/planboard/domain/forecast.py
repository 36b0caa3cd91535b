"""Monte Carlo schedule forecast: finish-date percentiles and a criticality index per task.

Each run draws every open task's duration as ``estimate * exp(N(mu, sigma))``, a
lognormal multiplier whose spread grows with complexity (defaults below) or is fitted
from the activity log's actual-vs-estimate ratios when there is enough history, then
propagates the dates through the dependency network with the same link formulas as
:mod:`.schedule`. Runs are columns of numpy arrays: the topological order is computed
once and each task is one vector operation per link over all runs, so 10,000 tasks by
1,000 runs take about a second (docs/benchmarks.md). Deterministic for a given seed.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

import numpy as np
import numpy.typing as npt

from .calendar import MICROS_PER_HOUR, WorkingCalendar, hours_to_micros
from .errors import ValidationFailed
from .links import LinkType
from .model import Complexity, TaskStatus
from .schedule import Link, Network, ScheduleTask, SchedulingMode, compile_network

Matrix = npt.NDArray[np.float64]

# sigma of log(actual / estimate) by complexity when there is no usable history
DEFAULT_SIGMA: Mapping[Complexity | None, float] = {
    Complexity.LOW: 0.2,
    Complexity.MEDIUM: 0.35,
    Complexity.HIGH: 0.55,
    None: 0.4,
}
MIN_HISTORY_SAMPLES = 20
MAX_SIGMA = 1.5
MAX_MU = 5.0  # a median overrun of e**5 = 148x is the most history can teach
MAX_RUNS = 100_000
DEFAULT_RUNS = 1_000
PERCENTILES = (50, 85, 95)
DEFAULT_MEMORY_BUDGET = 256 * 1024 * 1024
# A task is critical in a run when its slack is within this many working hours of 0.
CRITICAL_EPSILON_HOURS = 1e-6
# Runs are drawn in blocks, each from its own child of the seed: the draws do not
# depend on how many runs are simulated at once (the memory budget).
DRAW_BLOCK_RUNS = 128


@dataclass(frozen=True, slots=True)
class HistorySample:
    """A finished task: its estimate and the hours it took (in_progress → done)."""

    estimate_hours: float
    actual_hours: float
    complexity: Complexity | None = None


@dataclass(frozen=True, slots=True)
class StatusChange:
    """A recorded status change of a task (from the activity log): the status it got."""

    task_id: str
    at: datetime
    status: TaskStatus


@dataclass(frozen=True, slots=True)
class WorkSpan:
    """A task's last move to done and the latest move to in_progress before it (None when
    it reached done without one since its previous done)."""

    started: datetime | None
    finished: datetime


def work_spans(changes: Iterable[StatusChange]) -> dict[str, WorkSpan]:
    """Per task that was ever done: its last done and the in_progress paired with it.

    Changes may come in any order; they are taken by ``at`` (ties in the order given).
    Each done pairs with the latest in_progress before it that no earlier done used, so
    a task reopened and done again without being started again has no start.
    """
    started: dict[str, datetime | None] = {}
    spans: dict[str, WorkSpan] = {}
    for change in sorted(changes, key=lambda c: c.at):
        if change.status is TaskStatus.IN_PROGRESS:
            started[change.task_id] = change.at
        elif change.status is TaskStatus.DONE:
            spans[change.task_id] = WorkSpan(started.pop(change.task_id, None), change.at)
    return spans


@dataclass(frozen=True, slots=True)
class DurationModel:
    """``log(actual / estimate) ~ Normal(mu, sigma)``; ``samples`` it was fitted from."""

    mu: float = 0.0
    sigma: float = 0.0
    samples: int = 0

    def __post_init__(self) -> None:
        if not (abs(self.mu) <= MAX_MU and 0 <= self.sigma <= MAX_SIGMA):
            detail = f"a duration model needs |mu| <= {MAX_MU:g} and 0 <= sigma <= {MAX_SIGMA:g}"
            raise ValidationFailed([("model", detail)], detail)


def default_models() -> dict[Complexity | None, DurationModel]:
    """The spread by complexity, unbiased (median actual = estimate)."""
    return {c: DurationModel(0.0, sigma) for c, sigma in DEFAULT_SIGMA.items()}


def calibrate(
    history: Iterable[HistorySample], *, min_samples: int = MIN_HISTORY_SAMPLES
) -> dict[Complexity | None, DurationModel]:
    """Duration models from history; the defaults where it is too thin.

    A complexity class with ``min_samples`` usable samples (both hours positive) gets
    its own fit (mean and sample standard deviation of the log ratios, capped at MAX_MU
    and MAX_SIGMA). Otherwise, with ``min_samples`` samples over all classes, it keeps its
    default spread but takes the pooled bias (mean log ratio). Otherwise the default.
    """
    by_class: dict[Complexity | None, list[float]] = {c: [] for c in DEFAULT_SIGMA}
    pooled: list[float] = []
    for sample in history:
        estimate, actual = sample.estimate_hours, sample.actual_hours
        if not (math.isfinite(estimate) and math.isfinite(actual)) or estimate <= 0 or actual <= 0:
            continue
        ratio = math.log(actual / estimate)
        by_class[sample.complexity].append(ratio)
        pooled.append(ratio)
    models = default_models()
    pooled_ok = len(pooled) >= min_samples
    for complexity, logs in by_class.items():
        if len(logs) >= max(min_samples, 2):
            sigma = min(statistics.stdev(logs), MAX_SIGMA)
            models[complexity] = DurationModel(_bounded_mu(logs), sigma, len(logs))
        elif pooled_ok:
            models[complexity] = DurationModel(
                _bounded_mu(pooled), DEFAULT_SIGMA[complexity], len(pooled)
            )
    return models


def _bounded_mu(logs: list[float]) -> float:
    return max(-MAX_MU, min(MAX_MU, statistics.fmean(logs)))


@dataclass(frozen=True, slots=True)
class FinishPercentiles:
    """P50/P85/P95 finish dates (UTC) and the same as working hours after the project start."""

    p50: datetime
    p85: datetime
    p95: datetime
    p50_hours: float
    p85_hours: float
    p95_hours: float


@dataclass(frozen=True, slots=True)
class PhaseForecast:
    """A phase's finish: the latest finish of its tasks, per run."""

    name: str
    finish: FinishPercentiles


@dataclass(frozen=True, slots=True)
class Forecast:
    """The forecast of a project; ``criticality`` is the share of runs a task was critical in."""

    runs: int
    seed: int
    project: FinishPercentiles
    phases: tuple[PhaseForecast, ...]
    criticality: Mapping[str, float]
    models: Mapping[Complexity | None, DurationModel]


def forecast_project(
    tasks: Sequence[ScheduleTask],
    *,
    calendar: WorkingCalendar,
    project_start: datetime,
    runs: int = DEFAULT_RUNS,
    seed: int = 0,
    history: Iterable[HistorySample] = (),
    models: Mapping[Complexity | None, DurationModel] | None = None,
    mode: SchedulingMode = SchedulingMode.AUTOMATIC,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
) -> Forecast:
    """Simulate ``runs`` schedules of the project and summarise them.

    Closed tasks and tasks with an actual finish keep their durations; the others'
    are drawn from ``models`` (default: :func:`calibrate` of ``history``). In manual
    mode a task's own start acts as "start no earlier than" (its finish is what the
    forecast predicts). Raises ValidationFailed for a bad ``runs`` or ``seed``, and
    CycleDetected naming a cycle.
    """
    _check_arguments(runs, seed, memory_budget)
    if mode is SchedulingMode.MANUAL:
        tasks = [_planned_start_as_constraint(task) for task in tasks]
    network = compile_network(tasks, calendar=calendar, project_start=project_start)
    chosen = dict(models) if models is not None else calibrate(history)
    simulation = _Simulation(network, chosen)
    phases = _phases(network)
    n = len(network.ids)
    blocks = np.random.SeedSequence(seed).spawn(-(-runs // DRAW_BLOCK_RUNS))
    per_chunk = max(1, memory_budget // (2 * 8 * max(n, 1)) // DRAW_BLOCK_RUNS)
    finishes = np.empty(runs)
    phase_finishes = {name: np.empty(runs) for name in phases}
    critical_counts = np.zeros(n, dtype=np.int64)
    for first_block in range(0, len(blocks), per_chunk):
        chunk_blocks = blocks[first_block : first_block + per_chunk]
        first = first_block * DRAW_BLOCK_RUNS
        width = min(len(chunk_blocks) * DRAW_BLOCK_RUNS, runs - first)
        result = simulation.run(chunk_blocks, width, phases)
        finishes[first : first + width] = result.finish
        for name, values in result.phase_finishes.items():
            phase_finishes[name][first : first + width] = values
        critical_counts += result.critical_counts
    return Forecast(
        runs=runs,
        seed=seed,
        project=_percentiles(network, finishes),
        phases=tuple(
            PhaseForecast(name, _percentiles(network, values))
            for name, values in phase_finishes.items()
        ),
        criticality={
            task_id: float(count) / runs
            for task_id, count in zip(network.ids, critical_counts.tolist(), strict=True)
        },
        models=chosen,
    )


def _check_arguments(runs: int, seed: int, memory_budget: int) -> None:
    errors: list[tuple[str, str]] = []
    if isinstance(runs, bool) or not isinstance(runs, int) or not 1 <= runs <= MAX_RUNS:
        errors.append(("runs", f"must be a whole number from 1 to {MAX_RUNS}"))
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        errors.append(("seed", "must be a whole number, 0 or more"))
    if memory_budget <= 0:
        errors.append(("memory_budget", "must be positive"))
    if errors:
        raise ValidationFailed(errors, "cannot forecast: " + errors[0][1])


def _planned_start_as_constraint(task: ScheduleTask) -> ScheduleTask:
    if task.planned_start is None:
        return task
    floor = task.start_no_earlier_than
    start = task.planned_start if floor is None else max(floor, task.planned_start)
    return replace(task, start_no_earlier_than=start, planned_start=None, planned_finish=None)


def _phases(network: Network) -> dict[str, npt.NDArray[np.intp]]:
    """Task indexes by phase, phases in order of first appearance."""
    members: dict[str, list[int]] = {}
    for i, task in enumerate(network.tasks):
        if task.phase is not None:
            members.setdefault(task.phase, []).append(i)
    return {name: np.asarray(indexes, dtype=np.intp) for name, indexes in members.items()}


def _percentiles(network: Network, values: Matrix) -> FinishPercentiles:
    """Inverted-CDF percentiles (each one a simulated finish), dated via the calendar."""
    p50, p85, p95 = (float(v) for v in np.percentile(values, PERCENTILES, method="inverted_cdf"))
    return FinishPercentiles(
        p50=network.finish_date(hours_to_micros(p50)),
        p85=network.finish_date(hours_to_micros(p85)),
        p95=network.finish_date(hours_to_micros(p95)),
        p50_hours=p50,
        p85_hours=p85,
        p95_hours=p95,
    )


_FROM_FINISH = {link: link.from_finish for link in LinkType}
_TO_FINISH = {link: link.to_finish for link in LinkType}


def _vector_link(link: Link, other: int) -> tuple[int, bool, bool, float]:
    return other, _FROM_FINISH[link.type], _TO_FINISH[link.type], link.lag / MICROS_PER_HOUR


@dataclass(frozen=True, slots=True)
class _ChunkResult:
    finish: Matrix
    phase_finishes: dict[str, Matrix]
    critical_counts: npt.NDArray[np.int64]


class _Simulation:
    """The network in working hours as numpy vectors, and the passes over many runs."""

    def __init__(self, network: Network, models: Mapping[Complexity | None, DurationModel]) -> None:
        self.network = network
        n = len(network.ids)
        self.base = np.asarray(network.duration, dtype=np.float64) / MICROS_PER_HOUR
        self.mu = np.zeros(n)
        self.sigma = np.zeros(n)
        fixed: list[int] = []
        fixed_hours: list[float] = []
        for i, task in enumerate(network.tasks):
            start, finish = network.pin_start[i], network.pin_finish[i]
            if network.closed[i] or task.actual_finish is not None:
                fixed.append(i)
                span = network.duration[i] if start is None or finish is None else finish - start
                fixed_hours.append(span / MICROS_PER_HOUR)
            else:
                model = models.get(task.complexity) or models.get(None) or DurationModel()
                self.mu[i], self.sigma[i] = model.mu, model.sigma
        self.fixed = np.asarray(fixed, dtype=np.intp)
        self.fixed_hours = np.asarray(fixed_hours, dtype=np.float64)
        self.lower = np.asarray(network.lower, dtype=np.float64) / MICROS_PER_HOUR
        self.pin = [None if p is None else p / MICROS_PER_HOUR for p in network.pin_start]
        self.closed = network.closed
        # per task: (other task, from finish?, to finish?, lag in hours) for each link
        self.preds = [
            [_vector_link(link, link.predecessor) for link in links] for links in network.preds
        ]
        self.succs = [
            [_vector_link(link, link.successor) for link in links] for links in network.succs
        ]

    def durations(self, blocks: Sequence[np.random.SeedSequence], runs: int) -> Matrix:
        """Drawn durations in working hours, one row per task, one column per run."""
        n = len(self.base)
        d = np.empty((n, runs))
        for b, block in enumerate(blocks):
            first = b * DRAW_BLOCK_RUNS
            width = min(DRAW_BLOCK_RUNS, runs - first)
            d[:, first : first + width] = np.random.Generator(
                np.random.PCG64(block)
            ).standard_normal((n, DRAW_BLOCK_RUNS))[:, :width]
        d *= self.sigma[:, None]
        d += self.mu[:, None]
        np.exp(d, out=d)
        d *= self.base[:, None]
        if len(self.fixed):
            d[self.fixed] = self.fixed_hours[:, None]
        return d

    def run(
        self,
        blocks: Sequence[np.random.SeedSequence],
        runs: int,
        phases: Mapping[str, npt.NDArray[np.intp]],
    ) -> _ChunkResult:
        """Finish per run, phase finishes per run and critical-run counts per task."""
        d = self.durations(blocks, runs)
        ef = self.forward(d)
        finish = ef.max(axis=0) if len(d) else np.zeros(runs)
        phase_finishes = {name: ef[members].max(axis=0) for name, members in phases.items()}
        return _ChunkResult(finish, phase_finishes, self.backward(d, ef, finish))

    def forward(self, d: Matrix) -> Matrix:
        """Early finishes (one row per task); a row holds the early start until it is done."""
        runs = d.shape[1]
        ef = np.empty_like(d)
        tmp = np.empty(runs)
        early_start = np.empty(runs)
        to_finish_bound = np.empty(runs)
        for i in self.network.order:
            row = ef[i]
            pinned = self.pin[i]
            if pinned is not None:
                row.fill(pinned)
            else:
                row.fill(self.lower[i])
                has_finish_bound = False
                for p, from_finish, to_finish, lag in self.preds[i]:
                    # a row holds the early finish; the early start is one subtraction away
                    source = ef[p] if from_finish else np.subtract(ef[p], d[p], out=early_start)
                    if to_finish:
                        if has_finish_bound:
                            np.add(source, lag, out=tmp)
                            np.maximum(to_finish_bound, tmp, out=to_finish_bound)
                        else:
                            np.add(source, lag, out=to_finish_bound)
                            has_finish_bound = True
                    elif lag == 0:
                        np.maximum(row, source, out=row)
                    else:
                        np.add(source, lag, out=tmp)
                        np.maximum(row, tmp, out=row)
                if has_finish_bound:
                    np.subtract(to_finish_bound, d[i], out=to_finish_bound)
                    np.maximum(row, to_finish_bound, out=row)
            np.add(row, d[i], out=row)
        return ef

    def backward(self, d: Matrix, ef: Matrix, finish: Matrix) -> npt.NDArray[np.int64]:
        """Critical-run counts per task; ``ef`` rows become late starts, successors first."""
        n, runs = d.shape
        counts = np.zeros(n, dtype=np.int64)
        late_finish = np.empty(runs)
        start_bound = np.empty(runs)
        tmp = np.empty(runs)
        slack = np.empty(runs)
        epsilon = CRITICAL_EPSILON_HOURS
        ls = ef
        for i in reversed(self.network.order):
            if self.closed[i]:
                np.subtract(ef[i], d[i], out=ls[i])  # late dates = early dates
                continue
            late_finish[:] = finish
            has_start_bound = False
            for s, from_finish, to_finish, lag in self.succs[i]:
                source = np.add(ls[s], d[s], out=tmp) if to_finish else ls[s]
                if from_finish:
                    np.subtract(source, lag, out=tmp)
                    np.minimum(late_finish, tmp, out=late_finish)
                elif has_start_bound:
                    np.subtract(source, lag, out=tmp)
                    np.minimum(start_bound, tmp, out=start_bound)
                else:
                    np.subtract(source, lag, out=start_bound)
                    has_start_bound = True
            if has_start_bound:
                np.add(start_bound, d[i], out=start_bound)
                np.minimum(late_finish, start_bound, out=late_finish)
            np.subtract(late_finish, ef[i], out=slack)
            counts[i] = np.count_nonzero(slack <= epsilon)
            np.subtract(late_finish, d[i], out=ls[i])
        return counts
