"""What the handlers share: config, Kubernetes client, lag source, clock, metrics, locks."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from planboard_operator.config import OperatorConfig
from planboard_operator.kube import Kube
from planboard_operator.lag import LagSource
from planboard_operator.metrics import Metrics


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Runtime:
    config: OperatorConfig
    kube: Kube
    lag_source: LagSource
    metrics: Metrics = field(default_factory=Metrics)
    #: The time schedules and deadlines are judged by (tests move it forward).
    clock: Callable[[], datetime] = utcnow
    metrics_port: int | None = None
    reconciled: int = 0
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    def lock(self, key: str) -> asyncio.Lock:
        """One lock per Planboard: its reconcile, backups and restores never interleave."""
        if key not in self._locks:
            self._locks[key] = asyncio.Lock()
        return self._locks[key]
