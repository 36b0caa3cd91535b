"""The operator's Prometheus metrics (its own registry, served on ``/metrics``)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.reconciles = Counter(
            "planboard_operator_reconcile",
            "Reconciliations run, by kind and result (ok, error, paused).",
            ["kind", "result"],
            registry=r,
        )
        self.errors = Counter(
            "planboard_operator_reconcile_errors",
            "Reconciliations that failed, by kind and error class.",
            ["kind", "error"],
            registry=r,
        )
        self.duration = Histogram(
            "planboard_operator_reconcile_duration_seconds",
            "Time one reconciliation took, by kind.",
            ["kind"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.worker_lag = Gauge(
            "planboard_operator_worker_lag",
            "Consumer lag last read for a worker group (-1: unavailable).",
            ["namespace", "planboard", "group"],
            registry=r,
        )
        self.worker_replicas = Gauge(
            "planboard_operator_worker_replicas",
            "Replicas the operator set for a worker group.",
            ["namespace", "planboard", "group"],
            registry=r,
        )
        self.jobs = Counter(
            "planboard_operator_jobs",
            "Backups and restores that ended, by kind and result (complete, failed).",
            ["kind", "result"],
            registry=r,
        )
        self.last_backup_success = Gauge(
            "planboard_operator_last_backup_success_timestamp_seconds",
            "Completion time (Unix seconds) of the Planboard's newest successful backup.",
            ["namespace", "planboard"],
            registry=r,
        )
        self._backup_times: dict[tuple[str, str], float] = {}
        self._worker_groups: dict[tuple[str, str], set[str]] = {}
        self._lock = threading.Lock()
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def backup_succeeded(self, namespace: str, planboard: str, at: float) -> None:
        """Raise the Planboard's last-backup time to ``at``; an older backup that finishes
        late never lowers it."""
        with self._lock:
            known = self._backup_times.get((namespace, planboard))
            if known is None or at > known:
                self._backup_times[(namespace, planboard)] = at
                self.last_backup_success.labels(namespace, planboard).set(at)

    def workers_observed(
        self, namespace: str, planboard: str, groups: Mapping[str, tuple[int | None, int]]
    ) -> None:
        """Set each worker group's lag (None: unavailable, -1) and replicas; drop the
        series of groups the Planboard no longer has."""
        with self._lock:
            key = (namespace, planboard)
            for gone in self._worker_groups.get(key, set()) - set(groups):
                self._remove_worker_series(namespace, planboard, gone)
            self._worker_groups[key] = set(groups)
            for group, (lag, replicas) in groups.items():
                self.worker_lag.labels(namespace, planboard, group).set(-1 if lag is None else lag)
                self.worker_replicas.labels(namespace, planboard, group).set(replicas)

    def forget_planboard(self, namespace: str, planboard: str) -> None:
        """Drop a deleted Planboard's series (its backup alert must not fire forever, and
        its worker groups' lag and replicas are not someone's current state)."""
        with self._lock:
            if self._backup_times.pop((namespace, planboard), None) is not None:
                self.last_backup_success.remove(namespace, planboard)
            for group in self._worker_groups.pop((namespace, planboard), set()):
                self._remove_worker_series(namespace, planboard, group)

    def _remove_worker_series(self, namespace: str, planboard: str, group: str) -> None:
        for gauge in (self.worker_lag, self.worker_replicas):
            with contextlib.suppress(KeyError):  # never set
                gauge.remove(namespace, planboard, group)

    def serve(self, port: int, host: str = "0.0.0.0") -> int:
        """Serve ``/metrics`` in a thread; return the bound port (``port`` 0 picks one)."""
        self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)
        return int(self._server.server_port)

    def shutdown(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
