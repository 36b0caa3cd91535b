"""A Planboard's backup decisions: the schedule, retention, the restore that holds the
stack (backups and restores never overlap), and the backup part of its status."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from planboard_operator import backups, scheduling

from .factories import T0, Obj, backup, planboard, restore, ts

HOURLY = {"schedule": "0 * * * *", "storage": {"pvc": {"claimName": "b"}}}


def scheduled_pb(last: str | None = None, **backup_spec: object) -> Obj:
    status = {"lastScheduleTime": last} if last else None
    return planboard(backup={**HOURLY, **backup_spec}, status=status)


# -- schedule --------------------------------------------------------------------------


def test_nothing_is_due_before_the_first_tick() -> None:
    decision = backups.schedule(scheduled_pb(), [], T0 + timedelta(minutes=59))
    assert decision == backups.ScheduleDecision()
    assert decision.last_schedule_time is None


def test_the_due_tick_creates_a_scheduled_backup_owned_by_the_planboard() -> None:
    now = T0 + timedelta(hours=1, minutes=5)
    decision = backups.schedule(scheduled_pb(), [], now)
    assert decision.last_schedule_time == ts(T0 + timedelta(hours=1))
    assert decision.create is not None and decision.skipped is None
    meta = decision.create["metadata"]
    assert meta["name"] == "demo-202501011300"
    assert meta["labels"]["planboard.dev/scheduled"] == "true"
    assert meta["annotations"]["planboard.dev/scheduled-at"] == "2025-01-01T13:00:00Z"
    assert meta["ownerReferences"][0]["controller"] is False
    assert decision.create["spec"] == {"planboardRef": {"name": "demo"}}
    assert decision.created_event is not None
    assert decision.created_event.reason == "BackupScheduled"


def test_missed_ticks_collapse_into_the_newest() -> None:
    now = T0 + timedelta(hours=5, minutes=30)
    decision = backups.schedule(scheduled_pb(), [], now)
    assert decision.last_schedule_time == ts(T0 + timedelta(hours=5))


def test_a_tick_already_scheduled_is_not_scheduled_again() -> None:
    pb = scheduled_pb(last=ts(T0 + timedelta(hours=1)))
    assert backups.schedule(pb, [], T0 + timedelta(hours=1, minutes=59)).tick is None
    assert backups.schedule(pb, [], T0 + timedelta(hours=2)).tick == T0 + timedelta(hours=2)


def test_a_tick_while_the_last_scheduled_backup_runs_is_skipped_and_recorded() -> None:
    running = backup("demo-202501011300", scheduled=True, job=True)
    manual = backup("by-hand")  # not scheduled: does not block the schedule
    pb = scheduled_pb(last=ts(T0 + timedelta(hours=1)))
    decision = backups.schedule(pb, [running, manual], T0 + timedelta(hours=2))
    assert decision.create is None
    assert decision.last_schedule_time == ts(T0 + timedelta(hours=2))
    assert decision.skipped is not None and decision.skipped.warning
    assert decision.skipped.reason == "BackupSkipped"
    assert "demo-202501011300 has not finished" in decision.skipped.message
    done = backup("demo-202501011300", scheduled=True, outcome="ok")
    assert backups.schedule(pb, [done], T0 + timedelta(hours=2)).create is not None


def test_suspended_or_missing_schedules_do_nothing() -> None:
    later = T0 + timedelta(days=2)
    assert backups.schedule(scheduled_pb(suspend=True), [], later) == backups.ScheduleDecision()
    assert backups.schedule(planboard(), [], later) == backups.ScheduleDecision()


def test_an_invalid_schedule_is_a_problem_not_a_crash() -> None:
    for expression in ("every hour", "0 * * * * *"):
        decision = backups.schedule(scheduled_pb(schedule=expression), [], T0)
        assert decision.problem is not None
        assert decision.problem.reason == "InvalidBackupSchedule"
        assert decision.tick is None and decision.create is None
        summary = backups.summary(scheduled_pb(schedule=expression), [], decision)
        assert summary.problem == decision.problem


# -- retention -------------------------------------------------------------------------


outcomes = st.lists(st.sampled_from(["ok", "failed", None]), max_size=12)


@given(outcomes=outcomes, keep=st.integers(1, 5))
def test_retention_keeps_the_newest_of_each_outcome_and_never_unfinished(
    outcomes: list[str | None], keep: int
) -> None:
    objs = [
        backup(f"b{i}", outcome=o, completed=T0 + timedelta(minutes=i))
        for i, o in enumerate(outcomes)
    ]
    pruned = backups.to_prune(planboard(backup={**HOURLY, "retention": keep}), objs)
    names = {p["metadata"]["name"] for p in pruned}
    for result, predicate in (("ok", scheduling.succeeded), ("failed", scheduling.failed)):
        finished = [o for o in objs if predicate(o)]
        kept = [o["metadata"]["name"] for o in finished if o["metadata"]["name"] not in names]
        newest = sorted(finished, key=scheduling.completed_at, reverse=True)[:keep]
        assert kept == [o["metadata"]["name"] for o in objs if o in newest], result
    assert all(scheduling.terminal(p) for p in pruned)


def test_no_retention_prunes_nothing() -> None:
    many = [backup(f"b{i}", outcome="ok") for i in range(20)]
    assert backups.to_prune(planboard(backup=HOURLY), many) == []
    event = backups.pruned_event(planboard(backup={"retention": 3}), "b0")
    assert (event.reason, event.message) == (
        "BackupPruned",
        "deleted PlanboardBackup b0 (retention 3)",
    )


# -- backups and restores never overlap ------------------------------------------------


def test_a_running_restore_holds_the_stack() -> None:
    running = restore("r1", job=True)
    assert backups.restore_hold([], [running]) is running


def test_a_restore_next_in_line_holds_the_stack_before_its_job_starts() -> None:
    queued = restore("r1")
    assert backups.restore_hold([], [queued]) is queued
    finished = restore("r0", outcome="ok")
    assert backups.restore_hold([], [finished, queued]) is queued


def test_a_restore_behind_a_running_or_older_backup_does_not_hold_yet() -> None:
    later = T0 + timedelta(minutes=1)
    behind_running = restore("r1", created=later)
    assert backups.restore_hold([backup("b1", job=True, created=later)], [behind_running]) is None
    behind_older = restore("r1", created=later)
    assert backups.restore_hold([backup("b0", created=T0)], [behind_older]) is None
    # Finished backups are out of the queue.
    assert backups.restore_hold([backup("b0", outcome="failed")], [behind_older]) is behind_older


def test_restores_go_before_backups_created_in_the_same_second() -> None:
    same = restore("r1", created=T0)
    assert backups.restore_hold([backup("b1", created=T0)], [same]) is same


def test_only_the_first_restore_in_line_holds() -> None:
    first = restore("r1", created=T0)
    second = restore("r2", created=T0 + timedelta(seconds=5))
    assert backups.restore_hold([], [second, first]) is first


def restore_of(backup_name: str, name: str = "r1", **kwargs: object) -> Obj:
    obj = restore(name, **kwargs)  # type: ignore[arg-type]
    obj["spec"]["backupRef"] = {"name": backup_name}
    return obj


def test_a_restore_of_an_unfinished_backup_waits_behind_it_without_holding_the_stack() -> None:
    # Created together (kubectl apply of one file), or the restore first: the backup
    # must run first, with the stack serving, and the restore right after it.
    for restore_created in (T0, T0 - timedelta(minutes=5)):
        source = backup("b1", created=T0)
        waiting = restore_of("b1", created=restore_created)
        assert scheduling.blocker(source, [source, waiting]) is None
        assert scheduling.blocker(waiting, [source, waiting]) is source
        assert backups.restore_hold([source], [waiting]) is None
        running = backup("b1", created=T0, job=True)
        assert backups.restore_hold([running], [waiting]) is None
        done = backup("b1", created=T0, outcome="ok")
        assert backups.restore_hold([done], [waiting]) is waiting


def test_a_restore_behind_its_backup_keeps_the_order_of_the_others() -> None:
    early = T0 - timedelta(minutes=10)
    waiting = restore_of("b2", created=early)  # oldest, but waits for b2
    first = backup("b1", created=early + timedelta(minutes=1))
    source = backup("b2", created=early + timedelta(minutes=2))
    later = backup("b3", created=early + timedelta(minutes=3))
    peers = [waiting, first, source, later]
    assert scheduling.blocker(first, peers) is None
    assert scheduling.blocker(source, peers) is first
    assert scheduling.blocker(waiting, peers) is first  # the head of the queue
    assert scheduling.blocker(later, peers) is first
    after_first = [waiting, source, later]
    assert scheduling.blocker(source, after_first) is None
    assert scheduling.blocker(waiting, after_first) is source
    assert scheduling.blocker(later, after_first) is source
    b2_done = [waiting, later]
    assert scheduling.blocker(waiting, b2_done) is None
    assert scheduling.blocker(later, b2_done) is waiting


@st.composite
def job_queues(draw: st.DrawFn) -> list[Obj]:
    count = draw(st.integers(1, 8))
    objs = []
    for i in range(count):
        created = T0 + timedelta(seconds=draw(st.integers(0, 3)))
        if draw(st.booleans()):
            objs.append(backup(f"b{i}", created=created))
        else:
            obj = restore(f"r{i}", created=created)
            ref = draw(st.none() | st.integers(0, count - 1))
            if ref is not None:
                obj["spec"]["backupRef"] = {"name": f"b{ref}"}
            objs.append(obj)
    return objs


@given(job_queues())
def test_the_queue_always_drains_one_at_a_time_and_restores_follow_their_backup(
    objs: list[Obj],
) -> None:
    pending = list(objs)
    ran: list[str] = []
    while pending:
        free = [o for o in pending if scheduling.blocker(o, pending) is None]
        assert len(free) == 1, "exactly one object may start"
        (head,) = free
        ref = (head["spec"].get("backupRef") or {}).get("name")
        assert ref not in {o["metadata"]["name"] for o in pending if o is not head}, (
            "a restore started before the backup it restores"
        )
        pending.remove(head)
        ran.append(head["metadata"]["name"])
    assert sorted(ran) == sorted(o["metadata"]["name"] for o in objs)


# -- status ----------------------------------------------------------------------------


def test_no_finished_backup_is_unknown() -> None:
    summary = backups.summary(planboard(), [backup("b1", job=True)])
    assert (summary.condition.status, summary.condition.reason) == ("Unknown", "NoBackupYet")
    assert summary.fields() == {"lastSuccessfulBackup": None, "lastFailedBackup": None}


def test_the_newest_finished_backup_decides_backup_succeeded() -> None:
    ok = backup("b1", outcome="ok", completed=T0)
    bad = backup(
        "b2", outcome="failed", completed=T0 + timedelta(hours=1), reason="DeadlineExceeded"
    )
    failing = backups.summary(planboard(), [ok, bad])
    assert (failing.condition.status, failing.condition.reason) == (False, "DeadlineExceeded")
    assert failing.condition.message == "PlanboardBackup b2 failed: Job demo failed: boom"
    assert failing.last_successful == ts(T0)
    assert failing.last_failed == ts(T0 + timedelta(hours=1))
    newer = backup("b3", outcome="ok", completed=T0 + timedelta(hours=2))
    passing = backups.summary(planboard(), [ok, bad, newer])
    assert (passing.condition.status, passing.condition.reason) == (True, "BackupCompleted")
    assert (
        passing.condition.message
        == f"PlanboardBackup b3 completed at {ts(T0 + timedelta(hours=2))}"
    )


def test_pruned_backups_leave_their_times_in_the_status() -> None:
    pb = planboard(status={"lastSuccessfulBackup": "2024-12-31T00:00:00Z", "lastFailedBackup": "x"})
    summary = backups.summary(pb, [])
    assert summary.last_successful == "2024-12-31T00:00:00Z"
    assert summary.last_failed == "x"


def test_the_schedule_time_is_written_only_when_a_tick_was_due() -> None:
    due = backups.schedule(scheduled_pb(), [], T0 + timedelta(hours=1))
    assert backups.summary(scheduled_pb(), [], due).fields()["lastScheduleTime"] == ts(
        T0 + timedelta(hours=1)
    )
    idle = backups.schedule(scheduled_pb(), [], T0)
    assert "lastScheduleTime" not in backups.summary(scheduled_pb(), [], idle).fields()
