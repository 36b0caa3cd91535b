"""The operator's pure parts: ``spec.config.env`` in every pod and in the config hash,
the cache-warm Job of a restore, and the last-backup gauge."""

from __future__ import annotations

import copy
from typing import Any

from planboard_operator import builders
from planboard_operator.metrics import Metrics

GAUGE = "planboard_operator_last_backup_success_timestamp_seconds"
ENV = [
    {"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": "http://otel-collector:4318"},
    {"name": "SENTRY_DSN", "valueFrom": {"secretKeyRef": {"name": "sentry", "key": "dsn"}}},
]


def planboard(**config: Any) -> dict[str, Any]:
    return {
        "apiVersion": "planboard.dev/v1alpha1",
        "kind": "Planboard",
        "metadata": {"name": "demo", "namespace": "ns", "uid": "u-1", "generation": 1},
        "spec": {
            "image": {"repository": "registry.example/planboard", "tag": "0.1.0"},
            "secretKeyRef": {"name": "s", "key": "secret-key"},
            "mongodb": {"uriSecretRef": {"name": "s", "key": "mongodb-uri"}},
            "kafka": {"bootstrapServers": "kafka:9092"},
            "redis": {"urlSecretRef": {"name": "s", "key": "redis-url"}},
            "config": {"logLevel": "INFO", **config},
        },
    }


def restore(name: str = "r1") -> dict[str, Any]:
    return {
        "apiVersion": "planboard.dev/v1alpha1",
        "kind": "PlanboardRestore",
        "metadata": {"name": name, "namespace": "ns", "uid": "u-2"},
        "spec": {"planboardRef": {"name": "demo"}},
    }


def env_of(obj: dict[str, Any]) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = obj["spec"]["template"]["spec"]["containers"][0]["env"]
    return env


def test_config_env_renders_literals_and_secret_refs_in_order() -> None:
    assert builders.config_env(planboard(env=ENV)) == [
        {"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": "http://otel-collector:4318"},
        {"name": "SENTRY_DSN", "valueFrom": {"secretKeyRef": {"name": "sentry", "key": "dsn"}}},
    ]
    assert builders.config_env(planboard()) == []


def test_every_deployment_and_job_gets_the_env_after_the_connection_secrets() -> None:
    pb = planboard(env=ENV)
    digest = builders.config_hash(pb)
    objects = [
        builders.api_deployment(pb, replicas=2, config_digest=digest),
        builders.relay_deployment(pb, replicas=1, config_digest=digest),
        builders.worker_deployment(pb, "rollups", replicas=1, config_digest=digest),
        builders.restore_job(
            pb, restore(), {"pvc": {"claimName": "b"}}, "/backups/x.tar.gz", drop=False,
            deadline_seconds=60,
        ),
        builders.cache_warm_job(pb, restore(), deadline_seconds=600),
    ]  # fmt: skip
    for obj in objects:
        names = [e["name"] for e in env_of(obj)]
        assert names[:3] == ["PLANBOARD_SECRET_KEY", "PLANBOARD_MONGODB_URI", "PLANBOARD_REDIS_URL"]
        assert names[3:5] == ["OTEL_EXPORTER_OTLP_ENDPOINT", "SENTRY_DSN"], obj["metadata"]
    # Not in the ConfigMap: a Secret's value never lands in plain configuration.
    assert not [k for k in builders.config_data(pb) if k.startswith(("OTEL_", "SENTRY_"))]


def test_the_config_hash_covers_the_env() -> None:
    base = builders.config_hash(planboard())
    with_env = builders.config_hash(planboard(env=ENV))
    assert with_env != base
    other_secret = copy.deepcopy(ENV)
    other_secret[1]["valueFrom"]["secretKeyRef"]["key"] = "dsn-2"
    assert builders.config_hash(planboard(env=other_secret)) not in (base, with_env)
    reordered = builders.config_hash(planboard(env=list(reversed(ENV))))
    assert reordered != with_env  # order is what the container sees (later names win)
    assert builders.config_hash(planboard(env=copy.deepcopy(ENV))) == with_env


def test_the_cache_warm_job_of_a_restore() -> None:
    job = builders.cache_warm_job(planboard(), restore(), deadline_seconds=600)
    assert job["metadata"]["name"] == "r1-cache-warm"
    assert job["metadata"]["ownerReferences"][0]["kind"] == "PlanboardRestore"
    assert job["metadata"]["labels"]["app.kubernetes.io/component"] == "cache-warm"
    spec = job["spec"]
    assert spec["activeDeadlineSeconds"] == 600
    container = spec["template"]["spec"]["containers"][0]
    assert container["command"] == ["planboard", "cache-warm", "--invalidate"]
    assert [v["name"] for v in spec["template"]["spec"]["volumes"]] == ["tmp"]  # no storage
    long = builders.cache_warm_job(planboard(), restore("r" * 56), deadline_seconds=600)
    name = long["metadata"]["name"]
    assert len(name) <= 63 and name.endswith("-cache-warm")


def test_the_last_backup_gauge_only_moves_forward_and_is_forgotten() -> None:
    metrics = Metrics()
    labels = {"namespace": "ns", "planboard": "demo"}
    assert metrics.registry.get_sample_value(GAUGE, labels) is None
    metrics.backup_succeeded("ns", "demo", 2000.0)
    metrics.backup_succeeded("ns", "demo", 1000.0)  # an older backup finishing late
    assert metrics.registry.get_sample_value(GAUGE, labels) == 2000.0
    metrics.backup_succeeded("ns", "other", 500.0)
    metrics.forget_planboard("ns", "demo")
    assert metrics.registry.get_sample_value(GAUGE, labels) is None
    assert metrics.registry.get_sample_value(GAUGE, {**labels, "planboard": "other"}) == 500.0
    metrics.forget_planboard("ns", "never-seen")  # harmless


def test_worker_series_follow_the_groups_and_are_forgotten() -> None:
    metrics = Metrics()
    lag, replicas = "planboard_operator_worker_lag", "planboard_operator_worker_replicas"

    def sample(name: str, planboard: str, group: str) -> float | None:
        labels = {"namespace": "ns", "planboard": planboard, "group": group}
        return metrics.registry.get_sample_value(name, labels)

    metrics.workers_observed("ns", "demo", {"rollups": (120, 3), "webhooks": (None, 1)})
    metrics.workers_observed("ns", "other", {"rollups": (0, 1)})
    assert (sample(lag, "demo", "rollups"), sample(replicas, "demo", "rollups")) == (120, 3)
    assert sample(lag, "demo", "webhooks") == -1  # lag unavailable
    metrics.workers_observed("ns", "demo", {"rollups": (5, 2)})  # webhooks group removed
    assert sample(lag, "demo", "webhooks") is None and sample(replicas, "demo", "webhooks") is None
    assert sample(lag, "demo", "rollups") == 5
    metrics.forget_planboard("ns", "demo")
    assert sample(lag, "demo", "rollups") is None and sample(replicas, "demo", "rollups") is None
    assert sample(lag, "other", "rollups") == 0  # another Planboard keeps its series


def grace_of(obj: dict[str, Any]) -> int:
    grace: int = obj["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    return grace


def test_the_grace_period_covers_the_configured_drain() -> None:
    digest = "x"
    assert grace_of(builders.api_deployment(planboard(), replicas=1, config_digest=digest)) == 30
    slow = planboard(
        extra={"PLANBOARD_SHUTDOWN_DELAY_S": "10", "PLANBOARD_SHUTDOWN_TIMEOUT_S": "40.5"}
    )
    for obj in (
        builders.api_deployment(slow, replicas=1, config_digest=digest),
        builders.relay_deployment(slow, replicas=1, config_digest=digest),
        builders.worker_deployment(slow, "rollups", replicas=1, config_digest=digest),
    ):
        assert grace_of(obj) == 53  # ceil(10 + 40.5) + 2
    # Shorter than the default drain: never below 30 s.
    quick = planboard(extra={"PLANBOARD_SHUTDOWN_TIMEOUT_S": "5"})
    assert builders.grace_seconds(quick) == 30
    # A value the API refuses (the pod would not start) counts as the default.
    for bad in ("soon", "-1", "601", "nan"):
        assert builders.grace_seconds(planboard(extra={"PLANBOARD_SHUTDOWN_TIMEOUT_S": bad})) == 30


def readiness_of(obj: dict[str, Any]) -> dict[str, Any]:
    probe: dict[str, Any] = obj["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
    return probe


def test_the_readiness_probe_outlasts_the_slowest_readyz_answer() -> None:
    # /readyz waits up to PLANBOARD_DEPENDENCY_TIMEOUT_S (2 s by default) for a dependency
    # that does not answer: the probe must wait longer, or a silent Redis or Kafka (which
    # only degrade the API) would time the probe out and empty the Service.
    probe = readiness_of(builders.api_deployment(planboard(), replicas=1, config_digest="x"))
    assert probe["httpGet"] == {"path": "/readyz", "port": "http"}
    assert probe["timeoutSeconds"] == 3
    slow = planboard(extra={"PLANBOARD_DEPENDENCY_TIMEOUT_S": "4.5"})
    assert (
        readiness_of(builders.api_deployment(slow, replicas=1, config_digest="x"))["timeoutSeconds"]
        == 6
    )  # ceil(4.5) + 1
    for bad in ("soon", "0", "-1", "601", "nan"):
        pb = planboard(extra={"PLANBOARD_DEPENDENCY_TIMEOUT_S": bad})
        assert builders.readiness_timeout_seconds(pb) == 3
