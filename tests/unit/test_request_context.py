"""Generated request ids and the HTTP metrics of one request."""

from __future__ import annotations

import os
import re

import pytest

from planboard.api.middleware import new_request_id
from planboard.metrics import Metrics


def test_generated_request_ids_are_32_hex_digits_and_unique() -> None:
    ids = [new_request_id() for _ in range(50_000)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert len(set(ids)) == len(ids)


def test_a_forked_child_does_not_repeat_the_parents_ids() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: send its next id, then leave at once
        os.write(write, new_request_id().encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert re.fullmatch(r"[0-9a-f]{32}", child)
    assert child != new_request_id()


def test_observe_request_counts_like_labels() -> None:
    metrics = Metrics()
    for status, seconds in ((200, 0.002), (200, 0.3), (404, 0.001)):
        metrics.observe_request("GET", "/api/v1/x/{id}", status, seconds)
    value = metrics.registry.get_sample_value
    assert (
        value(
            "planboard_http_requests_total",
            {"method": "GET", "route": "/api/v1/x/{id}", "status": "200"},
        )
        == 2
    )
    assert (
        value(
            "planboard_http_requests_total",
            {"method": "GET", "route": "/api/v1/x/{id}", "status": "404"},
        )
        == 1
    )
    labels = {"method": "GET", "route": "/api/v1/x/{id}"}
    assert value("planboard_http_request_duration_seconds_count", labels) == 3
    assert value("planboard_http_request_duration_seconds_sum", labels) == pytest.approx(0.303)
    assert value("planboard_http_request_duration_seconds_bucket", {**labels, "le": "0.005"}) == 2


def test_unknown_methods_share_one_label_value() -> None:
    metrics = Metrics()
    for i in range(50):  # a client inventing methods mints no new series
        metrics.observe_request(f"X{i}", "unmatched", 405, 0.001)
    value = metrics.registry.get_sample_value
    labels = {"method": "OTHER", "route": "unmatched", "status": "405"}
    assert value("planboard_http_requests_total", labels) == 50
    assert len(metrics._request_children) == 1
