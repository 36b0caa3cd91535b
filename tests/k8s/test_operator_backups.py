"""Scheduled backups, retention, restores and their Jobs (no job controller: tests patch Jobs)."""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from planboard_operator.jobs import load_backup_times
from planboard_operator.run import build_runtime

from .conftest import PB_GROUP, PB_VERSION, RunningOperator, eventually, planboard_body

pytestmark = pytest.mark.k8s

PVC_STORAGE = {"pvc": {"claimName": "planboard-backups"}}


class Backups:
    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.namespace = namespace
        self.custom = client.CustomObjectsApi(api)
        self.batch = client.BatchV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.core = client.CoreV1Api(api)

    def create(self, plural: str, name: str, spec: dict[str, Any]) -> None:
        kind = {"planboardbackups": "PlanboardBackup", "planboardrestores": "PlanboardRestore"}
        self.custom.create_namespaced_custom_object(
            PB_GROUP,
            PB_VERSION,
            self.namespace,
            plural,
            {
                "apiVersion": f"{PB_GROUP}/{PB_VERSION}",
                "kind": kind[plural],
                "metadata": {"name": name},
                "spec": spec,
            },
        )

    def list(self, plural: str = "planboardbackups") -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.custom.list_namespaced_custom_object(
            PB_GROUP, PB_VERSION, self.namespace, plural
        )["items"]
        return sorted(items, key=lambda o: o["metadata"]["name"])

    def get(self, plural: str, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self.custom.get_namespaced_custom_object(
            PB_GROUP, PB_VERSION, self.namespace, plural, name
        )
        return found

    def condition(self, plural: str, name: str, type_: str) -> dict[str, Any]:
        for cond in (self.get(plural, name).get("status") or {}).get("conditions") or []:
            if cond["type"] == type_:
                return dict(cond)
        return {}

    def planboard(self, name: str = "demo") -> dict[str, Any]:
        found: dict[str, Any] = self.custom.get_namespaced_custom_object(
            PB_GROUP, PB_VERSION, self.namespace, "planboards", name
        )
        return found

    def pb_condition(self, type_: str) -> dict[str, Any]:
        for cond in (self.planboard().get("status") or {}).get("conditions") or []:
            if cond["type"] == type_:
                return dict(cond)
        return {}

    def job(self, name: str) -> client.V1Job | None:
        try:
            return self.batch.read_namespaced_job(name, self.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def active_jobs(self) -> list[str]:
        jobs = self.batch.list_namespaced_job(self.namespace).items
        return sorted(
            j.metadata.name
            for j in jobs
            if not any(c.status == "True" for c in (j.status.conditions or []))
        )

    def finish_job(
        self, name: str, *, ok: bool = True, reason: str = "BackoffLimitExceeded"
    ) -> None:
        """Do what the job controller would: mark the Job Complete or Failed."""
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        if ok:
            status = {
                "startTime": now,
                "completionTime": now,
                "succeeded": 1,
                "conditions": [
                    {"type": "SuccessCriteriaMet", "status": "True", "lastTransitionTime": now},
                    {"type": "Complete", "status": "True", "lastTransitionTime": now},
                ],
            }
        else:
            status = {
                "startTime": now,
                "failed": 1,
                "conditions": [
                    {
                        "type": "FailureTarget",
                        "status": "True",
                        "reason": reason,
                        "message": "Job has reached the specified backoff limit",
                        "lastTransitionTime": now,
                    },
                    {
                        "type": "Failed",
                        "status": "True",
                        "reason": reason,
                        "message": "Job has reached the specified backoff limit",
                        "lastTransitionTime": now,
                    },
                ],
            }
        self.batch.patch_namespaced_job_status(name, self.namespace, {"status": status})


@pytest.fixture
def backups(
    kube_api: client.ApiClient, namespace: str, planboard_operator: RunningOperator
) -> Iterator[Backups]:
    yield Backups(kube_api, namespace)
    planboard_operator.clock.offset = timedelta(0)


def create_planboard(backups: Backups, **backup_spec: Any) -> dict[str, Any]:
    spec = {"storage": PVC_STORAGE, **backup_spec}
    created: dict[str, Any] = backups.custom.create_namespaced_custom_object(
        PB_GROUP, PB_VERSION, backups.namespace, "planboards", planboard_body("demo", backup=spec)
    )
    eventually(lambda: backups.planboard().get("status", {}).get("observedGeneration") == 1)
    return created


def test_schedule_creates_backups_runs_jobs_and_prunes(
    backups: Backups, planboard_operator: RunningOperator
) -> None:
    clock = planboard_operator.clock
    created = create_planboard(backups, schedule="0 * * * *", retention=2, deadlineSeconds=86400)
    born = datetime.fromisoformat(created["metadata"]["creationTimestamp"].replace("Z", "+00:00"))
    assert backups.list() == []  # nothing is due before the first tick
    names: list[str] = []
    for hour in range(1, 4):
        clock.offset = timedelta(hours=hour)
        tick = (born + timedelta(hours=hour)).replace(minute=0, second=0, microsecond=0)
        name = f"demo-{tick:%Y%m%d%H%M}"
        names.append(name)
        eventually(lambda n=name: backups.condition("planboardbackups", n, "Running"), what=name)
        job_name = f"{name}-backup"
        job = eventually(lambda j=job_name: backups.job(j), what=f"Job {job_name}")
        container = job.spec.template.spec.containers[0]
        assert container.command == [
            "planboard",
            "backup",
            "--to",
            "/backups/demo",
            "--name",
            name,
            "--prune-keep",
            "2",
        ]
        volumes = {v.name: v for v in job.spec.template.spec.volumes}
        assert volumes["backups"].persistent_volume_claim.claim_name == "planboard-backups"
        assert job.spec.active_deadline_seconds == 86400
        assert job.metadata.owner_references[0].name == name
        backup = backups.get("planboardbackups", name)
        assert backup["metadata"]["labels"]["planboard.dev/scheduled"] == "true"
        assert backup["status"]["archive"] == f"/backups/demo/{name}.tar.gz"
        if hour == 1:
            # Never overlapping: the next tick is skipped while this backup runs,
            # and a manual backup waits in the queue.
            backups.create("planboardbackups", "manual", {"planboardRef": {"name": "demo"}})
            eventually(
                lambda: (
                    backups.condition("planboardbackups", "manual", "Running").get("reason")
                    == "Queued"
                ),
                what="the manual backup to be queued",
            )
            assert backups.active_jobs() == [job_name]
        backups.finish_job(job_name)
        eventually(
            lambda n=name: (
                backups.condition("planboardbackups", n, "Complete").get("status") == "True"
            ),
            what=f"{name} Complete",
        )
        if hour == 1:
            manual_job = eventually(lambda: backups.job("manual-backup"), what="the manual Job")
            assert backups.active_jobs() == ["manual-backup"]
            backups.finish_job(manual_job.metadata.name)
            eventually(
                lambda: (
                    backups.condition("planboardbackups", "manual", "Complete").get("status")
                    == "True"
                )
            )
    # Retention 2: only the two newest successful backups are left.
    eventually(
        lambda: [b["metadata"]["name"] for b in backups.list()] == names[1:],
        what="pruning to the newest two",
    )
    status = backups.planboard()["status"]
    assert status["lastSuccessfulBackup"]
    assert status["lastScheduleTime"].startswith(f"{names[-1][5:9]}-")
    succeeded = backups.pb_condition("BackupSucceeded")
    assert (succeeded["status"], succeeded["reason"]) == ("True", "BackupCompleted")
    assert names[-1] in succeeded["message"]


def test_failed_vanished_and_overdue_jobs_end_the_backup(
    backups: Backups, planboard_operator: RunningOperator
) -> None:
    create_planboard(backups)
    backups.create("planboardbackups", "b-fails", {"planboardRef": {"name": "demo"}})
    eventually(lambda: backups.job("b-fails-backup"), what="the Job")
    backups.finish_job("b-fails-backup", ok=False)
    eventually(
        lambda: backups.condition("planboardbackups", "b-fails", "Failed").get("status") == "True"
    )
    failed = backups.condition("planboardbackups", "b-fails", "Failed")
    assert failed["reason"] == "BackoffLimitExceeded"
    assert backups.condition("planboardbackups", "b-fails", "Running")["status"] == "False"
    eventually(lambda: backups.pb_condition("BackupSucceeded").get("status") == "False")
    assert backups.pb_condition("BackupSucceeded")["reason"] == "BackoffLimitExceeded"
    assert backups.planboard()["status"]["lastFailedBackup"]

    backups.create("planboardbackups", "b-vanishes", {"planboardRef": {"name": "demo"}})
    eventually(lambda: backups.job("b-vanishes-backup"), what="the Job")
    backups.batch.delete_namespaced_job("b-vanishes-backup", backups.namespace)
    eventually(
        lambda: (
            backups.condition("planboardbackups", "b-vanishes", "Failed").get("reason")
            == "JobVanished"
        ),
        what="JobVanished",
    )

    backups.create(
        "planboardbackups", "b-late", {"planboardRef": {"name": "demo"}, "deadlineSeconds": 60}
    )
    eventually(lambda: backups.job("b-late-backup"), what="the Job")
    planboard_operator.clock.offset = timedelta(seconds=61)
    eventually(
        lambda: (
            backups.condition("planboardbackups", "b-late", "Failed").get("reason")
            == "DeadlineExceeded"
        ),
        what="DeadlineExceeded",
    )
    eventually(lambda: backups.job("b-late-backup") is None, what="the overdue Job deleted")

    backups.create("planboardbackups", "b-orphan", {"planboardRef": {"name": "nope"}})
    eventually(
        lambda: (
            backups.condition("planboardbackups", "b-orphan", "Failed").get("reason")
            == "PlanboardNotFound"
        )
    )


def test_restore_waits_scales_down_runs_and_never_overlaps(backups: Backups) -> None:
    create_planboard(backups)
    backups.create("planboardbackups", "b1", {"planboardRef": {"name": "demo"}})
    eventually(lambda: backups.job("b1-backup"))
    backups.finish_job("b1-backup")
    eventually(
        lambda: backups.condition("planboardbackups", "b1", "Complete").get("status") == "True"
    )
    backups.create("planboardbackups", "b2", {"planboardRef": {"name": "demo"}})
    eventually(lambda: backups.job("b2-backup"))
    restore_spec = {"planboardRef": {"name": "demo"}, "backupRef": {"name": "b1"}, "drop": True}
    backups.create("planboardrestores", "r1", restore_spec)
    eventually(
        lambda: backups.condition("planboardrestores", "r1", "Running").get("reason") == "Queued",
        what="the restore to wait for b2",
    )
    assert backups.job("r1-restore") is None
    backups.finish_job("b2-backup")
    # The restore is next: the stack goes to zero, then its Job starts.
    job = eventually(lambda: backups.job("r1-restore"), timeout=40, what="the restore Job")
    deployments = backups.apps.list_namespaced_deployment(
        backups.namespace, label_selector="app.kubernetes.io/instance=demo"
    ).items
    assert deployments
    assert all(d.spec.replicas == 0 for d in deployments)
    assert job.spec.template.spec.containers[0].command == [
        "planboard",
        "restore",
        "/backups/demo/b1.tar.gz",
        "--drop",
    ]
    ready = backups.pb_condition("Ready")
    assert (ready["status"], ready["reason"]) == ("False", "RestoreInProgress")
    # A backup asked for during the restore waits for it.
    backups.create("planboardbackups", "b3", {"planboardRef": {"name": "demo"}})
    eventually(
        lambda: backups.condition("planboardbackups", "b3", "Running").get("reason") == "Queued"
    )
    assert backups.active_jobs() == ["r1-restore"]
    backups.finish_job("r1-restore")
    # Restored: the cache is warmed (old values dropped) while the stack is still at zero.
    warm = eventually(lambda: backups.job("r1-cache-warm"), what="the cache-warm Job")
    container = warm.spec.template.spec.containers[0]
    assert container.command == ["planboard", "cache-warm", "--invalidate"]
    assert {e.name for e in container.env} >= {"PLANBOARD_MONGODB_URI", "PLANBOARD_REDIS_URL"}
    assert warm.metadata.owner_references[0].name == "r1"
    assert warm.metadata.labels["app.kubernetes.io/component"] == "cache-warm"

    # the Job is created before the operator writes the restore's status: two API calls
    def warming() -> dict[str, Any] | None:
        found = backups.condition("planboardrestores", "r1", "Running")
        return found if found.get("reason") == "WarmingCache" else None

    running = eventually(warming, what="the restore's WarmingCache condition")
    assert (running["status"], running["reason"]) == ("True", "WarmingCache")
    assert backups.condition("planboardrestores", "r1", "Complete").get("status") != "True"
    assert backups.get("planboardrestores", "r1")["status"]["restoredAt"]
    assert all(
        d.spec.replicas == 0
        for d in backups.apps.list_namespaced_deployment(
            backups.namespace, label_selector="app.kubernetes.io/instance=demo"
        ).items
    )
    assert backups.job("b3-backup") is None  # still queued behind the restore
    backups.finish_job("r1-cache-warm")
    eventually(
        lambda: backups.condition("planboardrestores", "r1", "Complete").get("status") == "True"
    )
    assert (
        "r1-cache-warm warmed the cache"
        in (backups.condition("planboardrestores", "r1", "Complete")["message"])
    )
    restore = backups.get("planboardrestores", "r1")
    assert restore["status"]["archive"] == "/backups/demo/b1.tar.gz"
    assert restore["status"]["completedAt"]
    eventually(lambda: backups.job("b3-backup"), what="b3 to start after the restore")
    eventually(
        lambda: (
            backups.apps.read_namespaced_deployment("demo-api", backups.namespace).spec.replicas
            == 2
        ),
        what="the stack to scale back up",
    )

    # A restore of a failed backup fails with a reason.
    backups.finish_job("b3-backup", ok=False)
    backups.create(
        "planboardrestores",
        "r-bad",
        {"planboardRef": {"name": "demo"}, "backupRef": {"name": "b3"}},
    )
    eventually(
        lambda: (
            backups.condition("planboardrestores", "r-bad", "Failed").get("reason")
            == "BackupFailed"
        )
    )


def test_a_restore_created_before_its_backup_waits_for_it(backups: Backups) -> None:
    """A restore of a backup that has not run yet (both in one manifest, or the restore
    applied first) lets that backup run, with the stack serving, and then runs."""
    create_planboard(backups)
    restore_spec = {"planboardRef": {"name": "demo"}, "backupRef": {"name": "b-next"}}
    backups.create("planboardrestores", "r-early", restore_spec)
    backups.create("planboardbackups", "b-next", {"planboardRef": {"name": "demo"}})
    eventually(lambda: backups.job("b-next-backup"), what="the backup to run first")
    running = backups.condition("planboardrestores", "r-early", "Running")
    assert (running["status"], running["reason"]) == ("False", "Queued")
    assert "PlanboardBackup b-next" in running["message"]
    assert backups.job("r-early-restore") is None
    api = backups.apps.read_namespaced_deployment("demo-api", backups.namespace)
    assert api.spec.replicas == 2  # not held at zero while the backup runs
    assert backups.pb_condition("Ready").get("reason") != "RestoreInProgress"
    backups.finish_job("b-next-backup")
    job = eventually(lambda: backups.job("r-early-restore"), timeout=40, what="the restore Job")
    assert job.spec.template.spec.containers[0].command[:3] == [
        "planboard",
        "restore",
        "/backups/demo/b-next.tar.gz",
    ]
    assert backups.pb_condition("Ready").get("reason") == "RestoreInProgress"


def test_a_failed_cache_warm_still_completes_the_restore(backups: Backups) -> None:
    create_planboard(backups)
    spec = {"planboardRef": {"name": "demo"}, "archive": "demo/old.tar.gz"}
    backups.create("planboardrestores", "r-warm", spec)
    eventually(lambda: backups.job("r-warm-restore"), timeout=40, what="the restore Job")
    backups.finish_job("r-warm-restore")
    eventually(lambda: backups.job("r-warm-cache-warm"), what="the cache-warm Job")
    backups.finish_job("r-warm-cache-warm", ok=False)
    eventually(
        lambda: (
            backups.condition("planboardrestores", "r-warm", "Complete").get("status") == "True"
        ),
        what="the restore to complete without a warm cache",
    )
    assert (
        "warming the cache failed (BackoffLimitExceeded)"
        in (backups.condition("planboardrestores", "r-warm", "Complete")["message"])
    )
    events = backups.core.list_namespaced_event(
        backups.namespace, field_selector="involvedObject.name=r-warm"
    ).items
    warned = [e for e in events if e.reason == "CacheWarmFailed"]
    assert warned and warned[0].type == "Warning"

    # warmCache: false — the restore completes with its own Job, no warm.
    spec = {**spec, "warmCache": False}
    backups.create("planboardrestores", "r-cold", spec)
    eventually(lambda: backups.job("r-cold-restore"), timeout=40, what="the second restore Job")
    backups.finish_job("r-cold-restore")
    eventually(
        lambda: backups.condition("planboardrestores", "r-cold", "Complete").get("status") == "True"
    )
    assert backups.job("r-cold-cache-warm") is None
    assert "restoredAt" not in backups.get("planboardrestores", "r-cold")["status"]


def test_last_backup_gauge_is_set_on_success_and_loaded_at_start(
    backups: Backups, planboard_operator: RunningOperator
) -> None:
    create_planboard(backups)
    metrics = planboard_operator.runtime.metrics
    labels = {"namespace": backups.namespace, "planboard": "demo"}
    gauge = "planboard_operator_last_backup_success_timestamp_seconds"
    assert metrics.registry.get_sample_value(gauge, labels) is None
    backups.create("planboardbackups", "g1", {"planboardRef": {"name": "demo"}})
    eventually(lambda: backups.job("g1-backup"))
    backups.finish_job("g1-backup")
    eventually(
        lambda: backups.condition("planboardbackups", "g1", "Complete").get("status") == "True"
    )
    completed = backups.get("planboardbackups", "g1")["status"]["completedAt"]
    at = datetime.fromisoformat(completed.replace("Z", "+00:00")).timestamp()
    assert metrics.registry.get_sample_value(gauge, labels) == at
    # A failed backup leaves it alone.
    backups.create("planboardbackups", "g2", {"planboardRef": {"name": "demo"}})
    eventually(lambda: backups.job("g2-backup"))
    backups.finish_job("g2-backup", ok=False)
    eventually(
        lambda: backups.condition("planboardbackups", "g2", "Failed").get("status") == "True"
    )
    assert metrics.registry.get_sample_value(gauge, labels) == at
    # Served on /metrics.
    port = planboard_operator.runtime.metrics_port
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        assert (
            f'{gauge}{{namespace="{backups.namespace}",planboard="demo"}}' in resp.read().decode()
        )

    # A restarted operator (a fresh runtime) loads it from the newest completed backup.
    fresh = build_runtime(planboard_operator.runtime.config)
    assert asyncio.run(load_backup_times(fresh)) >= 1
    assert fresh.metrics.registry.get_sample_value(gauge, labels) == at

    # Deleting the Planboard drops its series.
    backups.custom.delete_namespaced_custom_object(
        PB_GROUP, PB_VERSION, backups.namespace, "planboards", "demo"
    )
    eventually(
        lambda: metrics.registry.get_sample_value(gauge, labels) is None,
        what="the deleted Planboard's series to go",
    )
