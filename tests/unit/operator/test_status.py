"""A Planboard's status and conditions from what a reconcile observed and decided."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from planboard_operator import backups, scaling, status
from planboard_operator import conditions as cond
from planboard_operator.outcomes import Problem

from .factories import T0, Obj, backup, deployment, planboard, restore, stack, ts

LATER = T0 + timedelta(minutes=10)


def by_type(fields: Obj) -> dict[str, Obj]:
    return {c["type"]: c for c in fields["conditions"]}


def reconcile(
    pb: Obj,
    deployments: dict[str, Obj] | None = None,
    *,
    hold: Obj | None = None,
    lag: scaling.LagReading | None = None,
    backup_list: list[Obj] | None = None,
    schedule: backups.ScheduleDecision | None = None,
    now: Any = T0,
) -> status.StatusUpdate:
    deps = stack(pb) if deployments is None else deployments
    workers = scaling.plan_workers(
        pb,
        deps,
        lag or scaling.LagReading.from_group_ids(pb, {}),
        now=now,
        scale_down_after_s=300,
        held=hold is not None,
    )
    summary = backups.summary(pb, backup_list or [], schedule)
    return status.reconciled(pb, status.Reconciled(deps, hold, workers, summary), now)


def test_a_settled_stack_is_ready_and_not_progressing() -> None:
    pb = planboard()
    fields = reconcile(pb).fields
    conditions = by_type(fields)
    assert conditions["Ready"]["status"] == "True"
    assert conditions["Ready"]["reason"] == "AllComponentsReady"
    assert conditions["Ready"]["message"] == "demo-api 1/1, demo-relay 1/1, demo-worker-mail 1/1"
    assert (conditions["Progressing"]["status"], conditions["Progressing"]["reason"]) == (
        "False",
        "RolloutComplete",
    )
    assert (conditions["Degraded"]["status"], conditions["Degraded"]["reason"]) == (
        "False",
        "AsExpected",
    )
    assert (conditions["ReconciliationPaused"]["status"]) == "False"
    assert (conditions["BackupSucceeded"]["status"]) == "Unknown"
    assert [c["type"] for c in fields["conditions"]] == sorted(conditions)
    assert fields["observedGeneration"] == 1
    assert fields["configHash"].startswith("sha256:")
    assert fields["api"] == {
        "replicas": 1,
        "readyReplicas": 1,
        "selector": "app.kubernetes.io/component=api,app.kubernetes.io/instance=demo,"
        "app.kubernetes.io/name=planboard",
    }
    assert fields["workers"] == {
        "mail": {"replicas": 1, "readyReplicas": 1, "lag": 0, "lastScaleTime": ts(T0)}
    }


def test_every_condition_carries_the_generation_it_was_computed_for() -> None:
    fields = reconcile(planboard(generation=7)).fields
    assert {c["observedGeneration"] for c in fields["conditions"]} == {7}
    assert fields["observedGeneration"] == 7


def test_a_rollout_in_progress_is_progressing_and_not_ready() -> None:
    pb = planboard()
    unobserved = deployment("demo-api", generation=2, observed=1)
    updating = deployment("demo-relay", replicas=2, updated=1, ready=1)
    conditions = by_type(reconcile(pb, stack(pb, api=unobserved, relay=updating)).fields)
    assert (conditions["Ready"]["status"], conditions["Ready"]["reason"]) == (
        "False",
        "ComponentsNotReady",
    )
    assert conditions["Ready"]["message"].startswith("not ready: demo-api, demo-relay (")
    assert conditions["Progressing"]["status"] == "True"
    assert conditions["Progressing"]["message"] == "rolling out: demo-api, demo-relay"


def test_rolled_out_but_unready_pods_are_not_ready_yet_not_progressing() -> None:
    pb = planboard()
    starting = deployment("demo-api", replicas=2, ready=1)
    conditions = by_type(reconcile(pb, stack(pb, api=starting)).fields)
    assert conditions["Ready"]["status"] == "False"
    assert "demo-api 1/2" in conditions["Ready"]["message"]
    assert conditions["Progressing"]["reason"] == "RolloutComplete"


def test_a_missing_deployment_is_not_ready() -> None:
    pb = planboard()
    deps = stack(pb)
    del deps["demo-worker-mail"]
    ready = by_type(reconcile(pb, deps).fields)["Ready"]
    assert ready["status"] == "False"
    assert "(missing Deployments)" in ready["message"]


def test_a_restore_holding_the_stack_says_so() -> None:
    pb = planboard()
    conditions = by_type(reconcile(pb, hold=restore("r1", job=True)).fields)
    assert (conditions["Ready"]["status"], conditions["Ready"]["reason"]) == (
        "False",
        "RestoreInProgress",
    )
    assert conditions["Ready"]["message"] == "stack scaled to zero for PlanboardRestore r1"
    assert conditions["Progressing"]["status"] == "True"
    assert conditions["Progressing"]["message"] == "rolling out: scaling to zero"


def test_problems_make_it_degraded_with_the_first_reason_and_one_warning() -> None:
    pb = planboard(backup={"schedule": "not cron"})
    schedule = backups.schedule(pb, [], T0)
    update = reconcile(pb, lag=scaling.LagReading(None, "broker down"), schedule=schedule)
    degraded = by_type(update.fields)["Degraded"]
    assert (degraded["status"], degraded["reason"]) == ("True", "KafkaLagUnavailable")
    assert "broker down" in degraded["message"]
    assert "'not cron' is not a valid cron expression" in degraded["message"]
    assert [(e.reason, e.warning) for e in update.events] == [("KafkaLagUnavailable", True)]
    # Still degraded at the next run: no second Warning.
    again = reconcile(
        planboard(backup={"schedule": "not cron"}, status=update.fields),
        lag=scaling.LagReading(None, "broker down"),
        schedule=schedule,
        now=LATER,
    )
    assert again.events == ()
    assert by_type(again.fields)["Degraded"]["lastTransitionTime"] == ts(T0)
    healed = by_type(reconcile(planboard(status=update.fields), now=LATER).fields)["Degraded"]
    assert (healed["status"], healed["lastTransitionTime"]) == ("False", ts(LATER))


def test_backup_succeeded_follows_the_summary() -> None:
    done = backup("b1", outcome="ok", completed=T0)
    fields = reconcile(planboard(), backup_list=[done]).fields
    assert by_type(fields)["BackupSucceeded"]["reason"] == "BackupCompleted"
    assert fields["lastSuccessfulBackup"] == ts(T0)
    assert fields["lastFailedBackup"] is None  # merge patch: nothing to record


def test_last_transition_time_moves_only_when_the_status_changes() -> None:
    pb = planboard()
    first = reconcile(pb).fields
    rolling = deployment("demo-api", generation=2, observed=1)
    # Ten minutes later the API rolls out: Ready and Progressing flip; the others keep
    # their time although they are set again.
    second = by_type(reconcile(planboard(status=first), stack(pb, api=rolling), now=LATER).fields)
    assert second["Ready"]["lastTransitionTime"] == ts(LATER)
    assert second["Progressing"]["lastTransitionTime"] == ts(LATER)
    for kept in ("Degraded", "BackupSucceeded", "ReconciliationPaused"):
        assert second[kept]["lastTransitionTime"] == ts(T0), kept
    # A message change alone (other replica counts) keeps Ready's time.
    third = reconcile(planboard(status=first), stack(pb, api=deployment("demo-api", replicas=3)))
    assert by_type(third.fields)["Ready"]["message"].startswith("demo-api 3/3")
    assert by_type(third.fields)["Ready"]["lastTransitionTime"] == ts(T0)


def test_paused_reports_what_exists_and_keeps_the_generation_unobserved() -> None:
    running = reconcile(planboard()).fields
    pb = planboard(paused=True, generation=2, status=running)
    reason = ("PausedBySpec", "spec.paused is true: no changes are made to the children")
    update = status.paused(pb, stack(pb), reason, LATER)
    conditions = by_type(update.fields)
    assert (
        conditions["ReconciliationPaused"]["status"],
        conditions["ReconciliationPaused"]["reason"],
    ) == (
        "True",
        "PausedBySpec",
    )
    assert conditions["ReconciliationPaused"]["lastTransitionTime"] == ts(LATER)
    assert (conditions["Progressing"]["status"], conditions["Progressing"]["reason"]) == (
        "False",
        "ReconciliationPaused",
    )
    assert conditions["Ready"]["status"] == "True"
    assert conditions["Ready"]["observedGeneration"] == 2
    assert "observedGeneration" not in update.fields
    assert "configHash" not in update.fields
    assert update.fields["workers"]["mail"] == {"replicas": 1, "readyReplicas": 1, "lag": 0}
    # Degraded and BackupSucceeded are left as they were.
    assert conditions["Degraded"] == by_type(running)["Degraded"]


def test_pause_and_resume_events_fire_on_transitions_only() -> None:
    reason = ("PausedByAnnotation", "annotation ...")
    fresh = planboard()
    assert status.pause_event(fresh, None) is None  # never paused: nothing to resume
    running = planboard(status=reconcile(fresh).fields)
    assert status.pause_event(running, None) is None
    event = status.pause_event(running, reason)
    assert event is not None and (event.reason, event.message) == (
        "ReconciliationPaused",
        "annotation ...",
    )
    paused = planboard(status=status.paused(running, stack(running), reason, T0).fields)
    assert status.pause_event(paused, reason) is None
    resumed = status.pause_event(paused, None)
    assert resumed is not None and resumed.reason == "ReconciliationResumed"


def test_a_gone_worker_group_is_removed_from_the_status() -> None:
    pb = planboard(status={"workers": {"old": {"replicas": 1, "readyReplicas": 1}}})
    assert reconcile(pb).fields["workers"]["old"] is None


def test_a_failed_reconcile_is_degraded_with_the_error_class() -> None:
    pb = planboard(status=reconcile(planboard()).fields)
    update = status.failed(pb, PermissionError("forbidden: deployments"), LATER)
    degraded = by_type(update.fields)["Degraded"]
    assert (degraded["status"], degraded["reason"]) == ("True", "PermissionError")
    assert degraded["message"] == "PermissionError: forbidden: deployments"
    assert [(e.reason, e.warning) for e in update.events] == [("ReconcileFailed", True)]
    assert set(update.fields) == {"conditions"}
    again = status.failed(planboard(status=update.fields), PermissionError("x"), LATER)
    assert again.events == ()


def test_needs_write_only_for_a_real_change() -> None:
    old = {"a": 1, "workers": {"w": {"lag": 1}}}
    assert not status.needs_write(old, {"a": 1})
    assert not status.needs_write(old, {"gone": None})
    assert status.needs_write(old, {"a": 2})
    assert status.needs_write(old, {"workers": None})
    assert status.needs_write(old, {"b": 0})


def test_no_write_when_the_merge_patch_would_change_nothing_nested() -> None:
    old = {"workers": {"w": {"replicas": 1, "lastScaleTime": "t"}}, "x": 1}
    assert not status.needs_write(old, {"workers": {"w": {"replicas": 1}}})  # merged: kept
    assert not status.needs_write(old, {"workers": {"w": {"lag": None}, "gone": None}})
    assert status.needs_write(old, {"workers": {"w": {"replicas": 2}}})
    assert status.needs_write(old, {"workers": {"w": {"lastScaleTime": None}}})
    assert status.needs_write(old, {"workers": {"v": {"replicas": 0}}})


def test_a_paused_planboard_or_unknown_lag_does_not_rewrite_an_unchanged_status() -> None:
    reason = ("PausedBySpec", "spec.paused is true: no changes are made to the children")
    running = reconcile(planboard()).fields
    paused_pb = planboard(paused=True, status=running)
    first = status.paused(paused_pb, stack(paused_pb), reason, T0).fields
    settled = planboard(paused=True, status=merged(running, first))
    again = status.paused(settled, stack(settled), reason, LATER).fields
    assert not status.needs_write(settled["status"], again)
    down = scaling.LagReading(None, "broker down")
    once = reconcile(planboard(status=running), lag=down).fields
    still = planboard(status=merged(running, once))
    assert not status.needs_write(still["status"], reconcile(still, lag=down, now=LATER).fields)


def merged(old: Obj, patch: Obj) -> Obj:
    """An RFC 7386 merge patch, as the API server applies it."""
    out = dict(old)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def test_degraded_update_joins_every_problem() -> None:
    update = status.degraded_update([Problem("A", "first"), Problem("B", "second")])
    assert (update.status, update.reason, update.message) == (True, "A", "first; second")


# -- conditions.set_condition ----------------------------------------------------------

statuses = st.sampled_from([True, False, "Unknown"])


@given(old=statuses, new=statuses, reason=st.text(max_size=5), generation=st.integers(1, 9))
def test_set_condition_moves_the_time_exactly_when_the_status_changes(
    old: bool | str, new: bool | str, reason: str, generation: int
) -> None:
    before = cond.set_condition([], "Ready", old, "r", "m", now=T0, generation=1)
    after = cond.set_condition(before, "Ready", new, reason, "n", now=LATER, generation=generation)
    (condition,) = after
    changed = cond.status_of(old) != cond.status_of(new)
    assert condition["lastTransitionTime"] == ts(LATER if changed else T0)
    assert condition["observedGeneration"] == generation
    assert condition["reason"] == reason
    assert cond.transitioned(before, after, "Ready") == changed
