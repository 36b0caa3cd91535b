"""The chart's monitoring and ingress templates, for real.

ServiceMonitors and the PrometheusRule need the Prometheus Operator's CRDs, which the local
control plane does not have: minimal stand-ins from tests/k8s/fixtures/ (structural schemas
of the fields the chart renders) are installed for this module, so the rendered objects are
validated like the rest of the chart (test_chart.py lints ci/monitoring-values.yaml; `helm
lint` has no --api-versions): kubeconform (offline, strict, schemas from the apiserver's
/openapi/v2), a server-side dry run and Helm's own capability detection.
promtool (built from the Prometheus Go module into the cache) checks the alert rules and
the dashboard's queries, and unit-tests every alert against synthetic series.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import pytest
import yaml

from planboard.app import create_app
from planboard.config import Settings
from planboard.events.consumer import ConsumerMetrics
from planboard.events.relay import Relay
from planboard.typedefs import metrics_key
from planboard.workers.webhooks import WebhookMetrics
from planboard_devstack.helm import (
    KUBECONFORM_SCHEMA_TEMPLATE,
    ensure_helm,
    ensure_promtool,
    write_kubeconform_schemas,
)
from planboard_devstack.kube import KubeCluster, install_kube
from planboard_operator import builders
from planboard_operator.metrics import Metrics as OperatorMetrics

from .conftest import ExternalCluster
from .test_chart import (
    CHART,
    CI_VALUES,
    CRDS,
    RECOMMENDED_LABELS,
    assert_all_valid,
    docs,
    eventually,
    kubeconform,
    ok,
    render,
    run,
)

pytestmark = pytest.mark.k8s

FIXTURES = Path(__file__).resolve().parent / "fixtures"
MONITORING_VALUES = CI_VALUES["monitoring-values"]
API_VERSIONS = ("--api-versions", "monitoring.coreos.com/v1")
MONITORING_KINDS = {"ServiceMonitor", "PrometheusRule"}
STACK = "pbci-planboard"  # the stack name for release pbci with default values

Cluster = KubeCluster | ExternalCluster
Runner = Callable[..., CompletedProcess[str]]


@pytest.fixture(scope="module")
def helm() -> Path:
    return ensure_helm()


@pytest.fixture(scope="module")
def promtool() -> Path:
    return ensure_promtool()


@pytest.fixture(scope="module")
def kubectl(kube_cluster: Cluster) -> Runner:
    binary = install_kube() / "kubectl"

    def run_kubectl(*args: str | Path, stdin: str | None = None) -> CompletedProcess[str]:
        return run(binary, "--kubeconfig", kube_cluster.kubeconfig_path, *args, stdin=stdin)

    return run_kubectl


def monitoring_objects(
    helm: Path, *extra: str, values: Path | None = MONITORING_VALUES
) -> list[dict[str, Any]]:
    return docs(ok(render(helm, values, *API_VERSIONS, *extra)))


def one(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"{kind}/{name}: {[o['metadata']['name'] for o in found]}"
    return found[0]


# -- rendering --------------------------------------------------------------------------------


def test_everything_is_off_by_default(helm: Path) -> None:
    kinds = {o["kind"] for o in docs(ok(render(helm, None, *API_VERSIONS)))}
    assert not kinds & (MONITORING_KINDS | {"Ingress", "Service", "ConfigMap"})


def test_prometheus_operator_kinds_need_the_api(helm: Path) -> None:
    """Without monitoring.coreos.com/v1 (a cluster without the Prometheus Operator) only the
    dashboard and the Ingress render, so `helm install` never fails on a missing CRD."""
    without = {o["kind"] for o in docs(ok(render(helm, MONITORING_VALUES)))}
    assert not without & MONITORING_KINDS
    assert {"ConfigMap", "Ingress"} <= without
    with_api = [o["kind"] for o in monitoring_objects(helm)]
    assert with_api.count("ServiceMonitor") == 2
    assert with_api.count("PrometheusRule") == 1
    assert with_api.count("Service") == 2


def test_rendered_objects_follow_the_conventions(helm: Path) -> None:
    for obj in monitoring_objects(helm):
        labels = obj["metadata"].get("labels", {})
        missing = [key for key in RECOMMENDED_LABELS if key not in labels]
        assert not missing, f"{obj['kind']}/{obj['metadata']['name']} lacks {missing}"
        assert labels["app.kubernetes.io/instance"] == "pbci"
        assert obj["metadata"].get("namespace", "pbci") == "pbci"


def stack_pod(component: str) -> dict[str, Any]:
    """A stack Pod as the operator builds it (its labels and container ports)."""
    pb = {
        "metadata": {"name": STACK, "namespace": "pbci", "uid": "u"},
        "spec": {
            "image": {"repository": "r", "tag": "0.1.0"},
            "secretKeyRef": {"name": "s", "key": "k"},
            "mongodb": {"uriSecretRef": {"name": "s", "key": "m"}},
            "redis": {"urlSecretRef": {"name": "s", "key": "r"}},
            "kafka": {"bootstrapServers": "kafka:9092"},
        },
    }
    if component == builders.API:
        deployment = builders.api_deployment(pb, replicas=1, config_digest="x")
    elif component == builders.RELAY:
        deployment = builders.relay_deployment(pb, replicas=1, config_digest="x")
    else:
        group = component.removeprefix("worker-")
        deployment = builders.worker_deployment(pb, group, replicas=1, config_digest="x")
    template: dict[str, Any] = deployment["spec"]["template"]
    return template


def keeps(endpoint: dict[str, Any], component: str) -> bool:
    (keep,) = [r for r in endpoint["relabelings"] if r["action"] == "keep"]
    assert keep["sourceLabels"] == ["__meta_kubernetes_pod_label_app_kubernetes_io_component"]
    return re.fullmatch(keep["regex"], component) is not None  # Prometheus anchors regexes


def test_servicemonitors_reach_the_operator_built_pods(helm: Path) -> None:
    objects = monitoring_objects(helm)
    service = one(objects, "Service", f"{STACK}-metrics")
    monitor = one(objects, "ServiceMonitor", STACK)
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["pbci"]}
    assert service["spec"]["clusterIP"] == "None"
    ports = {p["name"]: p for p in service["spec"]["ports"]}
    assert ports["metrics"]["targetPort"] == 9091  # PLANBOARD_METRICS_PORT of the value set
    endpoints = {e["port"]: e for e in monitor["spec"]["endpoints"]}
    assert set(endpoints) == {"http", "metrics"}
    assert {e["path"] for e in endpoints.values()} == {"/metrics"}
    assert {e["interval"] for e in endpoints.values()} == {"15s"}
    for component in ("api", "relay", "worker-notifications", "worker-webhooks"):
        pod = stack_pod(component)
        assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items(), component
        container_ports = {p["name"] for p in pod["spec"]["containers"][0].get("ports", [])}
        if component == "api":  # the only Pods whose named port `http` resolves
            assert ports["http"]["targetPort"] in container_ports
            assert keeps(endpoints["http"], component) and not keeps(
                endpoints["metrics"], component
            )
        else:
            assert "http" not in container_ports
            assert keeps(endpoints["metrics"], component) and not keeps(
                endpoints["http"], component
            )
    for component in ("backup", "restore", "cache-warm"):  # Job Pods: selected, no targets
        assert not keeps(endpoints["http"], component) and not keeps(
            endpoints["metrics"], component
        )
    for endpoint in endpoints.values():
        targets = {r.get("targetLabel") for r in endpoint["relabelings"]}
        assert {"planboard", "component"} <= targets

    operator = one(objects, "Deployment")
    operator_service = one(objects, "Service", "pbci-planboard-operator-metrics")
    operator_monitor = one(objects, "ServiceMonitor", "pbci-planboard-operator")
    pod_labels = operator["spec"]["template"]["metadata"]["labels"]
    assert operator_service["spec"]["selector"].items() <= pod_labels.items()
    assert (
        operator_monitor["spec"]["selector"]["matchLabels"].items()
        <= operator_service["metadata"]["labels"].items()
    )
    # The stack's ServiceMonitor never selects the operator's Service, nor the reverse.
    assert not (
        monitor["spec"]["selector"]["matchLabels"].items()
        <= operator_service["metadata"]["labels"].items()
    )
    container = operator["spec"]["template"]["spec"]["containers"][0]
    assert operator_service["spec"]["ports"][0]["targetPort"] in {
        p["name"] for p in container["ports"]
    }


def test_relay_and_workers_are_scraped_only_with_a_metrics_port(helm: Path) -> None:
    objects = monitoring_objects(
        helm, "--set", "monitoring.serviceMonitor.enabled=true", values=None
    )
    service = one(objects, "Service", f"{STACK}-metrics")
    assert [p["name"] for p in service["spec"]["ports"]] == ["http"]
    monitor = one(objects, "ServiceMonitor", STACK)
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["http"]
    refused = render(
        helm,
        MONITORING_VALUES,
        *API_VERSIONS,
        "--set-string",
        "stack.config.extra.PLANBOARD_METRICS_PORT=8080",
    )
    assert refused.returncode != 0 and "must differ from the API port" in refused.stderr


def test_operator_only_and_stack_only_releases(helm: Path) -> None:
    operator_only = monitoring_objects(helm, "--set", "stack.enabled=false")
    assert [o["metadata"]["name"] for o in operator_only if o["kind"] == "ServiceMonitor"] == [
        "pbci-planboard-operator"
    ]
    (rule,) = [o for o in operator_only if o["kind"] == "PrometheusRule"]
    assert [g["name"] for g in rule["spec"]["groups"]] == ["planboard.operator"]
    assert not [o for o in operator_only if o["kind"] == "Ingress"]
    stack_only = monitoring_objects(helm, "--set", "operator.enabled=false")
    assert [o["metadata"]["name"] for o in stack_only if o["kind"] == "ServiceMonitor"] == [STACK]
    (rule,) = [o for o in stack_only if o["kind"] == "PrometheusRule"]
    assert [g["name"] for g in rule["spec"]["groups"]] == ["planboard.api", "planboard.events"]


def test_ingress_routes_to_the_api_service_with_tls(helm: Path) -> None:
    ingress = one(monitoring_objects(helm), "Ingress")
    annotations = ingress["metadata"]["annotations"]
    assert annotations["cert-manager.io/cluster-issuer"] == "letsencrypt-prod"
    assert annotations["nginx.ingress.kubernetes.io/proxy-body-size"] == "4m"
    spec = ingress["spec"]
    assert spec["ingressClassName"] == "nginx"
    hosts = ["planboard.example.com", "api.planboard.example.com"]
    assert spec["tls"] == [{"hosts": hosts, "secretName": f"{STACK}-api-tls"}]
    assert [r["host"] for r in spec["rules"]] == hosts
    service = builders.api_service(
        {"metadata": {"name": STACK, "namespace": "pbci", "uid": "u"}, "spec": {"image": {}}}
    )
    for rule in spec["rules"]:
        (path,) = rule["http"]["paths"]
        assert path["path"] == "/" and path["pathType"] == "Prefix"
        backend = path["backend"]["service"]
        assert backend["name"] == service["metadata"]["name"]
        assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}

    namespaced_issuer = one(
        monitoring_objects(
            helm,
            "--set",
            "ingress.certManager.issuerKind=Issuer",
            "--set",
            "ingress.tls.secretName=mine",
        ),
        "Ingress",
    )
    assert (
        namespaced_issuer["metadata"]["annotations"]["cert-manager.io/issuer"] == "letsencrypt-prod"
    )
    assert "cert-manager.io/cluster-issuer" not in namespaced_issuer["metadata"]["annotations"]
    assert namespaced_issuer["spec"]["tls"][0]["secretName"] == "mine"
    plain = one(
        monitoring_objects(
            helm,
            "--set",
            "ingress.certManager.enabled=false",
            "--set",
            "ingress.tls.enabled=false",
            "--set",
            "ingress.className=",
        ),
        "Ingress",
    )
    assert "tls" not in plain["spec"] and "ingressClassName" not in plain["spec"]
    assert set(plain["metadata"]["annotations"]) == {"nginx.ingress.kubernetes.io/proxy-body-size"}


BAD_VALUES = [
    (
        "ingress without hosts",
        ["--set", "ingress.enabled=true"],
        "ingress.hosts needs at least one",
    ),
    (
        "bad host",
        ["--set", "ingress.enabled=true", "--set", "ingress.hosts[0]=Not_A_Host"],
        "/ingress/hosts/0",
    ),
    (
        "cert-manager without issuer",
        [
            "--set",
            "ingress.enabled=true",
            "--set",
            "ingress.hosts[0]=a.example.com",
            "--set",
            "ingress.certManager.enabled=true",
        ],
        "issuerName is required",
    ),
    ("bad path type", ["--set", "ingress.pathType=Regex"], "value must be one of"),
    ("bad interval", ["--set", "monitoring.serviceMonitor.interval=30 seconds"], "/interval"),
    ("ratio above 1", ["--set", "monitoring.prometheusRule.api.errorRatio=5"], "maximum"),
    (
        "unknown monitoring key",
        ["--set", "monitoring.grafana.enabled=true"],
        "additional properties 'grafana'",
    ),
    (
        "bad runbook url",
        ["--set", "monitoring.prometheusRule.runbookBaseUrl=docs"],
        "/runbookBaseUrl",
    ),
]


@pytest.mark.parametrize(("case", "args", "message"), BAD_VALUES, ids=[c[0] for c in BAD_VALUES])
def test_bad_values_are_refused(helm: Path, case: str, args: list[str], message: str) -> None:
    result = render(helm, None, *API_VERSIONS, *args)
    assert result.returncode != 0, f"{case}: accepted"
    assert message in result.stderr, result.stderr


# -- the dashboard -------------------------------------------------------------------------


def dashboard(helm: Path) -> dict[str, Any]:
    config_map = one(monitoring_objects(helm), "ConfigMap", "pbci-planboard-dashboard")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["annotations"] == {"grafana_folder": "Planboard"}
    (name,) = config_map["data"]
    assert name.endswith(".json")
    rendered: dict[str, Any] = json.loads(config_map["data"][name])
    assert rendered == json.loads((CHART / "dashboards" / "planboard.json").read_text())
    return rendered


def dashboard_queries(board: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in board["panels"] for t in p.get("targets", [])]


def test_dashboard_is_a_grafana_dashboard(helm: Path) -> None:
    board = dashboard(helm)
    assert board["uid"] == "planboard-overview" and board["title"] == "Planboard"
    assert isinstance(board["schemaVersion"], int)
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"] for v in board["templating"]["list"]}
    assert {"datasource", "namespace", "planboard", "operator_namespace"} <= variables
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
            assert panel["targets"], panel["title"]
    assert len(dashboard_queries(board)) >= 20


def exported_metric_names() -> set[str]:
    """Every sample name the service and the operator export (their registries, built)."""
    registries = [
        create_app(Settings())[metrics_key].registry,  # HTTP + rate limiting
        Relay(Settings(), None).registry,  # type: ignore[arg-type]
        ConsumerMetrics().registry,
        WebhookMetrics().registry,
        OperatorMetrics().registry,
    ]
    names: set[str] = set()
    for registry in registries:
        for family in registry.collect():
            if family.type == "counter":
                names.add(f"{family.name}_total")
            elif family.type == "histogram":
                names |= {f"{family.name}_bucket", f"{family.name}_sum", f"{family.name}_count"}
            else:
                names.add(family.name)
    return names


def referenced_metrics(expressions: list[str]) -> set[str]:
    return {m for e in expressions for m in re.findall(r"\b(planboard_[a-z_]+)\b", e)}


def alert_rules(helm: Path, *extra: str) -> list[dict[str, Any]]:
    rule = one(monitoring_objects(helm, *extra), "PrometheusRule")
    return [r for g in rule["spec"]["groups"] for r in g["rules"]]


def test_alerts_and_dashboard_use_metrics_the_code_exports(helm: Path) -> None:
    exported = exported_metric_names()
    alerts = referenced_metrics([r["expr"] for r in alert_rules(helm)])
    panels = referenced_metrics(dashboard_queries(dashboard(helm)))
    assert not alerts - exported, sorted(alerts - exported)
    assert not panels - exported, sorted(panels - exported)
    assert {
        "planboard_http_requests_total",
        "planboard_http_request_duration_seconds_bucket",
        "planboard_consumer_lag",
        "planboard_outbox_backlog",
        "planboard_events_dead_lettered_total",
        "planboard_operator_jobs_total",
        "planboard_operator_reconcile_errors_total",
        "planboard_operator_last_backup_success_timestamp_seconds",
    } <= alerts


# -- promtool: the rules parse, and every alert fires when it should ----------------------------

ALERTS = {
    "PlanboardApiErrorRatioHigh": "critical",
    "PlanboardApiLatencyHigh": "warning",
    "PlanboardConsumerLagHigh": "warning",
    "PlanboardOutboxBacklogHigh": "warning",
    "PlanboardEventsDeadLettered": "warning",
    "PlanboardOperatorReconcileErrors": "warning",
    "PlanboardBackupTooOld": "critical",
    "PlanboardBackupFailed": "warning",
}


def test_every_alert_has_a_runbook_entry(helm: Path) -> None:
    rules = alert_rules(helm)
    assert {r["alert"]: r["labels"]["severity"] for r in rules} == ALERTS
    operations = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()
    for rule in rules:
        assert rule["labels"]["team"] == "platform"
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        anchor = rule["alert"].lower()
        assert rule["annotations"]["runbook_url"] == (
            f"https://planboard.example.com/docs/operations#{anchor}"
        )
        assert f"### {rule['alert']}" in operations, f"docs/operations.md lacks {rule['alert']}"


def promtool_check(promtool: Path, groups: list[dict[str, Any]], tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": groups}))
    out = ok(run(promtool, "check", "rules", path))
    assert "SUCCESS" in out, out


def test_promtool_accepts_the_rules(helm: Path, promtool: Path, tmp_path: Path) -> None:
    for extra in ((), ("--set", "stack.enabled=false"), ("--set", "operator.enabled=false")):
        rule = one(monitoring_objects(helm, *extra), "PrometheusRule")
        promtool_check(promtool, rule["spec"]["groups"], tmp_path)


def test_promtool_accepts_the_dashboard_queries(helm: Path, promtool: Path, tmp_path: Path) -> None:
    variables = {
        "$__rate_interval": "5m",
        "$__range": "6h",
        "$namespace": "pbci",
        "$planboard": STACK,
        "$operator_namespace": ".*",
    }
    rules = []
    for n, query in enumerate(dashboard_queries(dashboard(helm))):
        for name, value in variables.items():
            query = query.replace(name, value)
        assert "$" not in query, query
        rules.append({"record": f"dashboard:query_{n}", "expr": query})
    promtool_check(promtool, [{"name": "dashboard", "rules": rules}], tmp_path)


def series(name: str, values: str, **labels: str) -> dict[str, str]:
    selector = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{name}{{{selector}}}", "values": values}


LAST_BACKUP = "planboard_operator_last_backup_success_timestamp_seconds"


def fired(alert: str, **labels: str) -> dict[str, Any]:
    return {"exp_labels": {"severity": ALERTS[alert], "team": "platform", **labels}}


def test_alerts_fire_on_synthetic_series(helm: Path, promtool: Path, tmp_path: Path) -> None:
    """promtool test rules: each alert fires when it should (and not for another Planboard)."""
    rule = one(monitoring_objects(helm), "PrometheusRule")
    groups = copy.deepcopy(rule["spec"]["groups"])
    for group in groups:  # annotations are templates for humans; the test checks labels
        for r in group["rules"]:
            r.pop("annotations", None)
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    ours = {"namespace": "pbci", "planboard": STACK}
    other = {"namespace": "pbci", "planboard": "another"}
    op = {"namespace": "pbci"}
    backup_failed = {**op, "kind": "PlanboardBackup", "result": "failed"}
    reconciled = {**op, "kind": "Planboard", "result": "ok"}
    minute_tests = {
        "interval": "1m",
        "input_series": [
            # 10% of requests fail (threshold 2%), for our stack and for another one.
            series("planboard_http_requests_total", "0+90x30", status="200", route="/a", **ours),
            series("planboard_http_requests_total", "0+10x30", status="500", route="/a", **ours),
            series("planboard_http_requests_total", "0+10x30", status="503", route="/a", **other),
            # Every request takes 0.5-2.5 s (p95 threshold 0.5 s).
            series("planboard_http_request_duration_seconds_bucket", "0x30", le="0.5", **ours),
            series("planboard_http_request_duration_seconds_bucket", "0+10x30", le="2.5", **ours),
            series("planboard_http_request_duration_seconds_bucket", "0+10x30", le="+Inf", **ours),
            # Two members of one group, 3000 each (threshold 5000 for the group).
            series("planboard_consumer_lag", "3000x30", group="notifications", pod="w1", **ours),
            series("planboard_consumer_lag", "3000x30", group="notifications", pod="w2", **ours),
            series("planboard_consumer_lag", "100x30", group="rollups", pod="w3", **ours),
            # Two relays report the same backlog: max, not sum (threshold 2000).
            series("planboard_outbox_backlog", "1500x30", pod="r1", **ours),
            series("planboard_outbox_backlog", "1500x30", pod="r2", **ours),
            # A group's first dead letter (a new series) at minute 10; another's at minute 20.
            series("planboard_events_dead_lettered_total", "_x10 1x20", group="webhooks", **ours),
            series("planboard_events_dead_lettered_total", "0x20 1x10", group="rollups", **ours),
            # The operator fails to reconcile Planboards from minute 0 on.
            series(
                "planboard_operator_reconcile_errors_total",
                "0+1x30",
                kind="Planboard",
                error="ApiException",
                **op,
            ),
            # A backup fails at minute 5 (a new series).
            series("planboard_operator_jobs_total", "_x5 1x25", **backup_failed),
        ],
        "alert_rule_test": [
            {"eval_time": "3m", "alertname": "PlanboardApiErrorRatioHigh", "exp_alerts": []},
            {
                "eval_time": "10m",
                "alertname": "PlanboardApiErrorRatioHigh",
                "exp_alerts": [fired("PlanboardApiErrorRatioHigh", **ours)],
            },
            {
                "eval_time": "20m",
                "alertname": "PlanboardApiLatencyHigh",
                "exp_alerts": [fired("PlanboardApiLatencyHigh", **ours)],
            },
            {"eval_time": "5m", "alertname": "PlanboardConsumerLagHigh", "exp_alerts": []},
            {
                "eval_time": "15m",
                "alertname": "PlanboardConsumerLagHigh",
                "exp_alerts": [fired("PlanboardConsumerLagHigh", group="notifications", **ours)],
            },
            {"eval_time": "20m", "alertname": "PlanboardOutboxBacklogHigh", "exp_alerts": []},
            {"eval_time": "5m", "alertname": "PlanboardEventsDeadLettered", "exp_alerts": []},
            {
                "eval_time": "12m",
                "alertname": "PlanboardEventsDeadLettered",
                "exp_alerts": [fired("PlanboardEventsDeadLettered", group="webhooks", **ours)],
            },
            {
                "eval_time": "22m",
                "alertname": "PlanboardEventsDeadLettered",
                "exp_alerts": [
                    fired("PlanboardEventsDeadLettered", group="webhooks", **ours),
                    fired("PlanboardEventsDeadLettered", group="rollups", **ours),
                ],
            },
            {"eval_time": "10m", "alertname": "PlanboardOperatorReconcileErrors", "exp_alerts": []},
            {
                "eval_time": "25m",
                "alertname": "PlanboardOperatorReconcileErrors",
                "exp_alerts": [
                    fired(
                        "PlanboardOperatorReconcileErrors",
                        kind="Planboard",
                        error="ApiException",
                        **op,
                    )
                ],
            },
            {"eval_time": "3m", "alertname": "PlanboardBackupFailed", "exp_alerts": []},
            {
                "eval_time": "8m",
                "alertname": "PlanboardBackupFailed",
                "exp_alerts": [fired("PlanboardBackupFailed")],
            },
        ],
    }
    # Two-minute samples: with a sample interval above Prometheus' 5-minute lookback the
    # `offset` terms would flap between samples and `for:` would never be satisfied.
    hour_tests = [
        {  # The newest backup finished at 0 h; maxAgeHours of the value set is 30.
            "interval": "2m",
            "input_series": [
                series(LAST_BACKUP, "0x1500", **ours),
                series("planboard_operator_reconcile_total", "0+1x1500", **reconciled),
            ],
            "alert_rule_test": [
                {"eval_time": "29h", "alertname": "PlanboardBackupTooOld", "exp_alerts": []},
                {
                    "eval_time": "31h",
                    "alertname": "PlanboardBackupTooOld",
                    "exp_alerts": [fired("PlanboardBackupTooOld", **ours)],
                },
            ],
        },
        {  # Daily backups for 72 h: never fires; another Planboard's old backup is not ours.
            "interval": "2m",
            "input_series": [
                series(LAST_BACKUP, "0x719 86400x719 172800x719", **ours),
                series(LAST_BACKUP, "0x2200", **other),
                series("planboard_operator_reconcile_total", "0+1x2200", **reconciled),
            ],
            "alert_rule_test": [
                {"eval_time": "60h", "alertname": "PlanboardBackupTooOld", "exp_alerts": []},
                {"eval_time": "71h", "alertname": "PlanboardBackupTooOld", "exp_alerts": []},
            ],
        },
        {  # The operator restarted at 20 h (a new series, set from the backups at start)
            # and backed up at 25 h: no alert at 32 h.
            "interval": "2m",
            "input_series": [
                series(LAST_BACKUP, "0x600", pod="old", **ours),
                series(LAST_BACKUP, "_x605 0x145 90000x500", pod="new", **ours),
                series("planboard_operator_reconcile_total", "0+1x600", pod="old", **reconciled),
                series(
                    "planboard_operator_reconcile_total", "_x605 0+1x700", pod="new", **reconciled
                ),
            ],
            "alert_rule_test": [
                {"eval_time": "32h", "alertname": "PlanboardBackupTooOld", "exp_alerts": []},
            ],
        },
        {  # A restart at 20 h without a backup since does not reset the age: fires at 31 h.
            "interval": "2m",
            "input_series": [
                series(LAST_BACKUP, "0x600", pod="old", **ours),
                series(LAST_BACKUP, "_x605 0x700", pod="new", **ours),
                series("planboard_operator_reconcile_total", "0+1x600", pod="old", **reconciled),
                series(
                    "planboard_operator_reconcile_total", "_x605 0+1x700", pod="new", **reconciled
                ),
            ],
            "alert_rule_test": [
                {"eval_time": "29h", "alertname": "PlanboardBackupTooOld", "exp_alerts": []},
                {
                    "eval_time": "31h",
                    "alertname": "PlanboardBackupTooOld",
                    "exp_alerts": [fired("PlanboardBackupTooOld", **ours)],
                },
            ],
        },
        {  # A fresh install: quiet until the operator has been up for 30 h without a backup.
            "interval": "2m",
            "input_series": [
                series("planboard_operator_reconcile_total", "0+1x1500", **reconciled),
            ],
            "alert_rule_test": [
                {"eval_time": "20h", "alertname": "PlanboardBackupTooOld", "exp_alerts": []},
                {
                    "eval_time": "31h",
                    "alertname": "PlanboardBackupTooOld",
                    "exp_alerts": [fired("PlanboardBackupTooOld", **ours)],
                },
            ],
        },
    ]
    test_file = tmp_path / "tests.yaml"
    test_file.write_text(
        yaml.safe_dump({"rule_files": ["rules.yaml"], "tests": [minute_tests, *hour_tests]})
    )
    result = run(promtool, "test", "rules", test_file, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


# -- on the cluster: the CRD stand-ins, kubeconform, a server-side dry run ------------------


@pytest.fixture(scope="module")
def monitoring_crds(kubectl: Runner) -> Iterator[list[str]]:
    """The planboard CRDs and the Prometheus Operator stand-ins, Established; removed after."""
    ok(kubectl("apply", "--server-side", "--force-conflicts", "-f", CRDS))
    fixtures = sorted(FIXTURES.glob("monitoring.coreos.com_*.yaml"))
    ok(
        kubectl(
            "apply", "--server-side", "--force-conflicts", *[a for p in fixtures for a in ("-f", p)]
        )
    )
    names = [docs(p.read_text())[0]["metadata"]["name"] for p in fixtures]
    for name in names:
        ok(kubectl("wait", "--for=condition=Established", "--timeout=60s", f"crd/{name}"))
    yield names
    kubectl("delete", "crd", *names, "--wait=false")


@pytest.fixture(scope="module")
def schema_location(kubectl: Runner, monitoring_crds: list[str], tmp_path_factory: Any) -> str:
    def openapi() -> dict[str, Any] | None:
        result = kubectl("get", "--raw", "/openapi/v2")
        if result.returncode != 0:
            return None
        document: dict[str, Any] = json.loads(result.stdout)
        kinds = {
            gvk.get("kind")
            for schema in document.get("definitions", {}).values()
            for gvk in schema.get("x-kubernetes-group-version-kind", [])
            if gvk.get("group") in ("monitoring.coreos.com", "planboard.dev")
        }
        return document if MONITORING_KINDS | {"Planboard"} <= kinds else None

    document = eventually(openapi, timeout=60, what="the monitoring CRDs in /openapi/v2")
    schemas = write_kubeconform_schemas(document, tmp_path_factory.mktemp("kubeconform"))
    return f"{schemas}/{KUBECONFORM_SCHEMA_TEMPLATE}"


def test_rendered_monitoring_is_valid_for_kubeconform(
    helm: Path, schema_location: str, tmp_path: Path
) -> None:
    manifest = tmp_path / "rendered.yaml"
    rendered = ok(render(helm, MONITORING_VALUES, *API_VERSIONS))
    manifest.write_text(rendered)
    kinds = [d["kind"] for d in docs(rendered)]
    assert MONITORING_KINDS | {"Ingress", "ConfigMap", "Service"} <= set(kinds)
    result = kubeconform(schema_location, manifest)
    assert_all_valid(result, expected_min=len(kinds))  # every object, none skipped


def test_kubeconform_catches_a_wrong_field(
    helm: Path, schema_location: str, tmp_path: Path
) -> None:
    """The stand-in schemas are strict: a misspelt ServiceMonitor field is refused."""
    objects = monitoring_objects(helm)
    monitor = one(objects, "ServiceMonitor", STACK)
    monitor["spec"]["endpoints"][0]["intervall"] = "30s"
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(yaml.safe_dump(monitor))
    report = json.loads(kubeconform(schema_location, manifest).stdout)
    assert report["summary"]["invalid"] == 1, report


@pytest.mark.usefixtures("monitoring_crds")
def test_rendered_monitoring_passes_a_server_side_dry_run(
    helm: Path, kubectl: Runner, namespace: str, tmp_path: Path
) -> None:
    manifest = tmp_path / "rendered.yaml"
    manifest.write_text(ok(render(helm, MONITORING_VALUES, *API_VERSIONS, namespace=namespace)))
    out = ok(kubectl("apply", "--dry-run=server", "--validate=strict", "-f", manifest))
    assert "servicemonitor.monitoring.coreos.com/pbci-planboard created (server dry run)" in out
    assert "prometheusrule.monitoring.coreos.com/pbci-planboard created (server dry run)" in out
    assert "ingress.networking.k8s.io/pbci-planboard-api created (server dry run)" in out


@pytest.mark.usefixtures("monitoring_crds")
def test_helm_detects_the_api_on_the_cluster(
    helm: Path, kube_cluster: Cluster, namespace: str
) -> None:
    """`helm install --dry-run=server` asks the cluster: the stand-in CRDs make it render them."""
    out = ok(
        run(
            helm, "install", "pbci", CHART, "--namespace", namespace, "--dry-run=server",
            "--values", MONITORING_VALUES, "--kubeconfig", str(kube_cluster.kubeconfig_path),
        )
    )  # fmt: skip
    kinds = [d["kind"] for d in docs(out.split("NOTES:", 1)[0].split("MANIFEST:", 1)[1])]
    assert kinds.count("ServiceMonitor") == 2 and kinds.count("PrometheusRule") == 1
