"""Operator settings, grouped by concern (kopf style); built by ``__main__`` or tests."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Scope:
    """Which namespaces are watched: the listed ones, or all of them."""

    namespaces: tuple[str, ...] = ()
    clusterwide: bool = False


@dataclass(frozen=True, slots=True)
class Timing:
    #: Every object is re-checked this often (drift repair, lag scaling, schedules).
    resync_seconds: float = 30.0
    #: Time allowed to read consumer lag from Kafka before it counts as unavailable.
    lag_timeout_seconds: float = 5.0
    #: Worker replicas only go down after this long since their last change.
    scale_down_stabilization_seconds: float = 300.0
    #: Grace beyond a backup/restore deadline before the operator fails it itself.
    deadline_grace_seconds: float = 60.0


@dataclass(frozen=True, slots=True)
class Endpoints:
    #: Port of the Prometheus ``/metrics`` endpoint; None: not served.
    metrics_port: int | None = 9090
    metrics_host: str = "0.0.0.0"
    #: kopf's liveness endpoint (``/healthz``); None: not served.
    liveness_endpoint: str | None = "http://0.0.0.0:8081/healthz"


@dataclass(frozen=True, slots=True)
class Peering:
    #: A KopfPeering name: several operator replicas, one active. None: standalone.
    name: str | None = None
    priority: int = 0


@dataclass(frozen=True, slots=True)
class OperatorConfig:
    scope: Scope = field(default_factory=Scope)
    timing: Timing = field(default_factory=Timing)
    endpoints: Endpoints = field(default_factory=Endpoints)
    peering: Peering = field(default_factory=Peering)
    #: Lowest level of kopf's own handler messages posted as Kubernetes Events.
    posting_level: str = "WARNING"
    #: A kubeconfig file; None: in-cluster config, else $KUBECONFIG / ~/.kube/config.
    kubeconfig: str | None = None
