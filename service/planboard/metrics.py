"""Prometheus metrics, one registry per process (never the global one)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

#: Set by the ``planboard serve`` supervisor (planboard/supervisor.py) in its children.
CHILD_ENV = "PLANBOARD_SERVE_CHILD"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0)


def multiprocess_metrics() -> bool:
    """Whether this process is one of several ``planboard serve`` processes that write
    their samples to a shared directory (each one's /metrics then answers for all)."""
    return bool(os.environ.get(MULTIPROC_ENV)) and os.environ.get(CHILD_ENV) == "1"


HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


@dataclass
class Metrics:
    """The HTTP metrics of one API process."""

    registry: CollectorRegistry = field(
        default_factory=lambda: CollectorRegistry(auto_describe=True)
    )

    def __post_init__(self) -> None:
        self.requests = Counter(
            "planboard_http_requests_total",
            "HTTP requests by route, method and status.",
            ("method", "route", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "planboard_http_request_duration_seconds",
            "HTTP request latency by route and method.",
            ("method", "route"),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        # (method, route, status) -> the labelled children's inc and observe, looked up
        # once: ``labels()`` validates and joins its arguments on every call.
        self._request_children: dict[
            tuple[str, str, int], tuple[Callable[[], None], Callable[[float], None]]
        ] = {}
        self.in_flight = Gauge(
            "planboard_http_requests_in_flight",
            "HTTP requests being served.",
            registry=self.registry,
            multiprocess_mode="livesum",  # under `planboard serve` with several processes
        )
        self.dependency_up = Gauge(
            "planboard_dependency_up",
            "Whether a dependency answered the last readiness check (1) or not (0).",
            ("dependency",),
            registry=self.registry,
            multiprocess_mode="livemin",  # down in any process reads as down
        )
        self.attachment_uploads = Counter(
            "planboard_attachment_uploads_total",
            "Attachments stored, by storage backend.",
            ("storage",),
            registry=self.registry,
        )
        self.attachment_bytes = Counter(
            "planboard_attachment_upload_bytes_total",
            "Bytes of attachments stored, by storage backend.",
            ("storage",),
            registry=self.registry,
        )
        self.attachment_rejections = Counter(
            "planboard_attachment_rejections_total",
            "Uploads refused, by reason (too_large, empty, type_not_allowed, executable, "
            "markup, binary, extension_mismatch, image_too_large, broken_image, ...).",
            ("reason",),
            registry=self.registry,
        )

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answered request and its latency. Methods outside HTTP's usual set are
        counted as ``OTHER``: a client must not be able to mint label values (series)."""
        if method not in HTTP_METHODS:
            method = "OTHER"
        key = (method, route, status)
        children = self._request_children.get(key)
        if children is None:
            children = (
                self.requests.labels(method, route, str(status)).inc,
                self.latency.labels(method, route).observe,
            )
            self._request_children[key] = children
        inc, observe = children
        inc()
        observe(seconds)
