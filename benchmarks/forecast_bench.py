"""Schedule forecast at 1k and 10k tasks: the Monte Carlo (numpy) and the CPM it generalises.

Builds a random dependency network (each task has 0-3 predecessors among the 200 tasks
before it: 70 % FS, 15 % SS, 10 % FF, 5 % SF, a fifth of the links with a lag or lead;
estimates of 1-40 hours, 10 % milestones, random complexity, 10 phases) on a Mon-Fri
09:00-17:00 Europe/Berlin calendar, then times, best of ``--repeat``:

- ``schedule_project`` (one CPM pass with dates and slack),
- ``forecast_project`` with ``--runs`` runs (default 1,000): draws, both passes over
  all runs, percentiles, criticality,
- the same Monte Carlo without numpy (``--python-runs`` runs of the scalar CPM passes
  with durations from ``random.lognormvariate``), extrapolated to ``--runs`` runs: the
  measured reason for numpy (docs/scheduling.md).

    .venv/bin/python benchmarks/forecast_bench.py                     # 1k and 10k tasks
    .venv/bin/python benchmarks/forecast_bench.py --tasks 10000 --runs 1000 --repeat 5
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

import numpy as np

from planboard.domain.calendar import WorkingCalendar
from planboard.domain.forecast import DEFAULT_SIGMA, Forecast, forecast_project
from planboard.domain.links import Dependency, Lag, LagUnit, LinkType
from planboard.domain.model import Complexity
from planboard.domain.schedule import (
    ScheduleTask,
    compile_network,
    run_passes,
    schedule_project,
)

CALENDAR = WorkingCalendar(timezone="Europe/Berlin")
START = datetime(2026, 1, 5, 8, tzinfo=UTC)
LINK_WEIGHTS = {LinkType.FS: 70, LinkType.SS: 15, LinkType.FF: 10, LinkType.SF: 5}


def machine() -> str:
    cpu = "unknown"
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as info:
        mem_gib = int(info.readline().split()[1]) / 1024 / 1024
    return (
        f"nproc {os.cpu_count()}, CPU {cpu!r}, {mem_gib:.1f} GiB RAM, "
        f"Python {platform.python_version()}, numpy {np.__version__}, "
        f"load avg (1 min) {os.getloadavg()[0]:.1f}"
    )


def network(n: int, rng: random.Random) -> list[ScheduleTask]:
    types, weights = list(LINK_WEIGHTS), list(LINK_WEIGHTS.values())
    tasks = []
    for i in range(n):
        preds = rng.sample(range(max(0, i - 200), i), min(i, rng.randint(0, 3)))
        deps = []
        for p in preds:
            lag = Lag()
            if rng.random() < 0.2:
                lag = Lag(rng.choice([-4, -1, 2, 8]), LagUnit.HOURS)
                if rng.random() < 0.5:
                    lag = Lag(rng.choice([-1, 1, 2]), LagUnit.DAYS)
            deps.append(Dependency(f"T{p}", rng.choices(types, weights)[0], lag))
        hours = 0.0 if rng.random() < 0.1 else float(rng.choice([1, 2, 4, 8, 16, 24, 40]))
        tasks.append(
            ScheduleTask(
                f"T{i}",
                hours,
                tuple(deps),
                complexity=rng.choice([*Complexity, None]),
                phase=f"Phase {i * 10 // n + 1}",
            )
        )
    return tasks


def best_of(repeat: int, work: Callable[[], object]) -> tuple[float, float, object]:
    """Best wall-clock and best CPU seconds of ``repeat`` runs, and the last result.

    CPU time (this process) is the fairer figure on a shared machine: it leaves out the
    time other processes held the cores.
    """
    walls, cpus = [], []
    result: object = None
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        result = work()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return min(walls), min(cpus), result


def pure_python_runs(tasks: list[ScheduleTask], runs: int, seed: int) -> float:
    """CPU seconds of ``runs`` scalar Monte Carlo runs (no numpy): draw, both passes."""
    compiled = compile_network(tasks, calendar=CALENDAR, project_start=START)
    rng = random.Random(seed)  # noqa: S311 (not for security)
    sigmas = [DEFAULT_SIGMA[t.complexity] for t in compiled.tasks]
    began = time.process_time()
    for _ in range(runs):
        drawn = [
            round(d * rng.lognormvariate(0.0, s))
            for d, s in zip(compiled.duration, sigmas, strict=True)
        ]
        passes = run_passes(replace(compiled, duration=drawn))
        assert passes.finish >= 0
    return time.process_time() - began


def measure(n: int, args: argparse.Namespace) -> str:
    """One table row for ``n`` tasks."""
    tasks = network(n, random.Random(args.seed))  # noqa: S311 (not for security)
    links = sum(len(t.predecessors) for t in tasks)
    cpm_wall, cpm_cpu, _ = best_of(
        args.repeat, lambda: schedule_project(tasks, calendar=CALENDAR, project_start=START)
    )
    forecast_wall, forecast_cpu, result = best_of(
        args.repeat,
        lambda: forecast_project(
            tasks, calendar=CALENDAR, project_start=START, runs=args.runs, seed=args.seed
        ),
    )
    assert isinstance(result, Forecast)
    finish = result.project
    python_cpu = pure_python_runs(tasks, args.python_runs, args.seed) * args.runs / args.python_runs
    return (
        f"| {n:,} | {links:,} | {cpm_wall:.2f} s ({cpm_cpu:.2f} s) "
        f"| **{forecast_wall:.2f} s** ({forecast_cpu:.2f} s) "
        f"| {finish.p50:%Y-%m-%d} / {finish.p85:%Y-%m-%d} / {finish.p95:%Y-%m-%d} "
        f"| {python_cpu:.0f} s ({python_cpu / forecast_cpu:.0f}x) |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, nargs="+", default=[1_000, 10_000])
    parser.add_argument("--runs", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--python-runs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=19)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(
        "| tasks | links | CPM schedule: wall (CPU) "
        f"| forecast, {args.runs:,} runs: wall (CPU) | P50 / P85 / P95 finish "
        f"| pure Python, {args.runs:,} runs: CPU (extrapolated) |"
    )
    print("|---|---|---|---|---|---|")
    for n in args.tasks:
        print(measure(n, args), flush=True)
    print(f"machine at the end: {machine()}")


if __name__ == "__main__":
    main()
