"""Worker replicas from consumer lag, within a group's bounds (pure)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any


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
