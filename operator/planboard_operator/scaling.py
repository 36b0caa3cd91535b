"""How many replicas each Deployment of a Planboard gets (pure).

Workers follow consumer lag within their group's bounds; the API has the spec's count
(or none: its HPA decides); a restore that holds the stack puts everything at zero.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from planboard_operator import builders, scheduling
from planboard_operator.conditions import rfc3339
from planboard_operator.outcomes import Event, Problem


@dataclass(frozen=True, slots=True)
class WorkerDecision:
    replicas: int
    changed: bool
    reason: str


def bounded(value: int, group: Mapping[str, Any]) -> int:
    low, high = int(group.get("minReplicas", 1)), int(group.get("maxReplicas", 4))
    return max(low, min(high, value))


def wanted_for_lag(lag: int, group: Mapping[str, Any]) -> int:
    per_replica = max(1, int(group.get("lagPerReplica", 1000)))
    return bounded(math.ceil(max(0, lag) / per_replica), group)


def decide(
    group: Mapping[str, Any],
    *,
    current: int | None,
    lag: int | None,
    last_scale: datetime | None,
    now: datetime,
    scale_down_after_s: float,
) -> WorkerDecision:
    """The replica count for a worker group now.

    No lag reading (Kafka down): keep the current count (clamped to the bounds).
    Scaling up is immediate; scaling down waits ``scale_down_after_s`` after the last
    change so a passing dip in lag does not flap the Deployment.
    """
    if current is None:
        start = bounded(wanted_for_lag(lag, group) if lag is not None else 0, group)
        return WorkerDecision(start, True, "initial")
    if lag is None:
        kept = bounded(current, group)
        return WorkerDecision(kept, kept != current, "lag unavailable: kept")
    wanted = wanted_for_lag(lag, group)
    recent = last_scale is not None and (now - last_scale).total_seconds() < scale_down_after_s
    if wanted < current and recent:
        kept = bounded(current, group)
        return WorkerDecision(kept, kept != current, "scale-down stabilization")
    return WorkerDecision(wanted, wanted != current, f"lag {lag}")


def worker_groups(pb: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The spec's worker groups by name, in spec order."""
    return {g["name"]: g for g in (pb["spec"].get("workers") or {}).get("groups") or []}


def group_ids(pb: Mapping[str, Any]) -> dict[str, str]:
    """Kafka consumer group id of each worker group: ``<topicPrefix><group>``."""
    prefix = str(pb["spec"]["kafka"].get("topicPrefix", "planboard."))
    return {group: prefix + group for group in worker_groups(pb)}


@dataclass(frozen=True, slots=True)
class LagReading:
    """Consumer lag per worker group, or why it could not be read (``lags`` None)."""

    lags: Mapping[str, int] | None
    error: str | None = None

    @classmethod
    def from_group_ids(cls, pb: Mapping[str, Any], by_id: Mapping[str, int]) -> LagReading:
        """A lag source's answer (by consumer group id) as lag per worker group."""
        return cls({group: by_id.get(gid, 0) for group, gid in group_ids(pb).items()})

    @property
    def problem(self) -> Problem | None:
        if self.error is None:
            return None
        return Problem(
            "KafkaLagUnavailable", f"cannot read consumer lag ({self.error}); worker replicas kept"
        )


@dataclass(frozen=True, slots=True)
class GroupScale:
    """One worker group's decision in one reconcile."""

    deployment: str
    #: The Deployment's replicas before this run; None: it does not exist yet.
    current: int | None
    lag: int | None
    decision: WorkerDecision
    #: ``status.workers.<group>.lastScaleTime`` after this run.
    last_scale_time: str


@dataclass(frozen=True, slots=True)
class WorkerPlan:
    """Every worker group's decision in one reconcile, what to announce and what went wrong."""

    groups: Mapping[str, GroupScale]
    events: tuple[Event, ...] = ()
    #: ``KafkaLagUnavailable``: replicas were kept, not decided from lag.
    problem: Problem | None = None

    @property
    def replicas(self) -> dict[str, int]:
        return {name: g.decision.replicas for name, g in self.groups.items()}

    @property
    def changed(self) -> set[str]:
        """Names of the worker Deployments this run rescales."""
        return {g.deployment for g in self.groups.values() if g.decision.changed}

    @property
    def observed(self) -> dict[str, tuple[int | None, int]]:
        """(lag, replicas) per group, for the metrics."""
        return {name: (g.lag, g.decision.replicas) for name, g in self.groups.items()}


def plan_workers(
    pb: Mapping[str, Any],
    deployments: Mapping[str, Mapping[str, Any]],
    reading: LagReading,
    *,
    now: datetime,
    scale_down_after_s: float,
    held: bool,
) -> WorkerPlan:
    """Every worker group's replicas from its lag, its Deployment (by name) and the
    status's last scale time. While a restore holds the stack nothing is announced:
    the Deployments are at zero whatever is decided here."""
    name = pb["metadata"]["name"]
    old = (pb.get("status") or {}).get("workers") or {}
    groups: dict[str, GroupScale] = {}
    posted: list[Event] = []
    for group_name, group in worker_groups(pb).items():
        dep_name = builders.child_name(name, builders.worker_part(group_name))
        dep = deployments.get(dep_name)
        current = int(dep["spec"].get("replicas", 1)) if dep is not None else None
        previous = old.get(group_name) or {}
        lag = reading.lags.get(group_name) if reading.lags is not None else None
        decision = decide(
            group,
            current=current,
            lag=lag,
            last_scale=scheduling.parse_time(previous.get("lastScaleTime")),
            now=now,
            scale_down_after_s=scale_down_after_s,
        )
        scaled_at = (
            rfc3339(now) if decision.changed else previous.get("lastScaleTime", rfc3339(now))
        )
        groups[group_name] = GroupScale(dep_name, current, lag, decision, str(scaled_at))
        if decision.changed and current is not None and not held:
            posted.append(
                Event(
                    "WorkersScaled",
                    f"worker group {group_name}: {current} -> {decision.replicas} "
                    f"({decision.reason})",
                )
            )
    return WorkerPlan(groups, tuple(posted), reading.problem)


def stack_replicas(
    pb: Mapping[str, Any], workers: Mapping[str, int], *, held: bool
) -> builders.Replicas:
    """The replica counts applied: the spec's and the workers' plan, or all zero while a
    restore holds the stack (the API's too, even under an HPA)."""
    if held:
        return builders.Replicas(api=0, relay=0, workers=dict.fromkeys(worker_groups(pb), 0))
    spec = pb["spec"]
    api = (
        None
        if builders.autoscaling_enabled(pb)
        else int((spec.get("api") or {}).get("replicas", 2))
    )
    relay = int((spec.get("relay") or {}).get("replicas", 1))
    return builders.Replicas(api=api, relay=relay, workers=dict(workers))
