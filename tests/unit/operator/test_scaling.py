"""Replica decisions: worker groups from consumer lag, the stack's counts, a restore's hold."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from planboard_operator import scaling
from planboard_operator.scaling import LagReading, decide

from .factories import T0, Obj, deployment, planboard, ts

WINDOW = 300.0
GROUP = {"name": "mail", "minReplicas": 1, "maxReplicas": 4, "lagPerReplica": 100}


@st.composite
def groups(draw: st.DrawFn) -> dict[str, Any]:
    low = draw(st.integers(0, 20))
    high = draw(st.integers(low, 40))
    return {
        "name": "g",
        "minReplicas": low,
        "maxReplicas": high,
        "lagPerReplica": draw(st.integers(-5, 10_000)),
    }


@given(
    group=groups(),
    current=st.none() | st.integers(0, 100),
    lag=st.none() | st.integers(-1000, 10**9),
    since_scale=st.none() | st.floats(0, 3 * WINDOW),
)
def test_replicas_always_within_the_bounds(
    group: Obj, current: int | None, lag: int | None, since_scale: float | None
) -> None:
    last = None if since_scale is None else T0 - timedelta(seconds=since_scale)
    decision = decide(
        group, current=current, lag=lag, last_scale=last, now=T0, scale_down_after_s=WINDOW
    )
    assert group["minReplicas"] <= decision.replicas <= group["maxReplicas"]
    if current is None:
        assert decision.changed and decision.reason == "initial"
    else:
        assert decision.changed == (decision.replicas != current)


@given(
    group=groups(),
    current=st.integers(0, 60),
    lag=st.integers(0, 10**7),
    since_scale=st.none() | st.floats(0, 3 * WINDOW),
)
def test_up_at_once_down_only_after_the_window(
    group: Obj, current: int, lag: int, since_scale: float | None
) -> None:
    last = None if since_scale is None else T0 - timedelta(seconds=since_scale)
    wanted = scaling.wanted_for_lag(lag, group)
    decision = decide(
        group, current=current, lag=lag, last_scale=last, now=T0, scale_down_after_s=WINDOW
    )
    recent = since_scale is not None and since_scale < WINDOW
    if wanted >= current or not recent:
        assert decision.replicas == wanted
    else:  # a dip inside the window keeps the count (clamped to the bounds)
        assert decision.replicas == scaling.bounded(current, group)
        assert decision.reason == "scale-down stabilization"


def test_lag_per_replica_rounds_up() -> None:
    assert [scaling.wanted_for_lag(lag, GROUP) for lag in (0, 1, 100, 101, 250, 10**6)] == [
        1,
        1,
        1,
        2,
        3,
        4,
    ]


def test_unknown_lag_keeps_the_current_count_within_the_bounds() -> None:
    kept = decide(GROUP, current=3, lag=None, last_scale=None, now=T0, scale_down_after_s=WINDOW)
    assert (kept.replicas, kept.changed) == (3, False)
    clamped = decide(GROUP, current=9, lag=None, last_scale=None, now=T0, scale_down_after_s=WINDOW)
    assert (clamped.replicas, clamped.changed) == (4, True)
    new = decide(GROUP, current=None, lag=None, last_scale=None, now=T0, scale_down_after_s=WINDOW)
    assert (new.replicas, new.reason) == (1, "initial")


def pb_with(current: Obj | None = None) -> Obj:
    return planboard(
        groups=[GROUP, {"name": "rollups"}],
        status={"workers": current or {}},
    )


def plan(
    pb: Obj,
    deps: dict[str, Obj],
    reading: LagReading,
    *,
    held: bool = False,
) -> scaling.WorkerPlan:
    return scaling.plan_workers(
        pb,
        deps,
        reading,
        now=T0,
        scale_down_after_s=WINDOW,
        held=held,
    )


def test_plan_scales_each_group_and_announces_changes() -> None:
    earlier = ts(T0 - timedelta(hours=1))
    pb = pb_with({"mail": {"lastScaleTime": earlier}, "rollups": {"lastScaleTime": earlier}})
    deps = {"demo-worker-mail": deployment("demo-worker-mail", replicas=1)}
    result = plan(pb, deps, LagReading.from_group_ids(pb, {"pb.mail": 250, "pb.rollups": 7}))
    assert result.replicas == {"mail": 3, "rollups": 1}
    assert result.changed == {"demo-worker-mail", "demo-worker-rollups"}  # rollups: created
    assert result.observed == {"mail": (250, 3), "rollups": (7, 1)}
    assert result.groups["mail"].last_scale_time == ts(T0)
    assert [(e.reason, e.message) for e in result.events] == [
        ("WorkersScaled", "worker group mail: 1 -> 3 (lag 250)")
    ]  # no event for the Deployment that does not exist yet
    assert result.problem is None


def test_an_unchanged_group_keeps_its_last_scale_time() -> None:
    earlier = ts(T0 - timedelta(seconds=30))
    pb = pb_with({"mail": {"lastScaleTime": earlier}})
    deps = {
        "demo-worker-mail": deployment("demo-worker-mail", replicas=3),
        "demo-worker-rollups": deployment("demo-worker-rollups", replicas=1),
    }
    result = plan(pb, deps, LagReading.from_group_ids(pb, {"pb.mail": 0}))
    assert result.replicas["mail"] == 3  # inside the stabilization window
    assert result.groups["mail"].last_scale_time == earlier
    assert result.groups["rollups"].last_scale_time == ts(T0)  # none recorded yet
    assert result.changed == set() and result.events == ()


def test_unavailable_lag_keeps_replicas_and_is_a_problem() -> None:
    pb = pb_with()
    deps = {
        "demo-worker-mail": deployment("demo-worker-mail", replicas=4),
        "demo-worker-rollups": deployment("demo-worker-rollups", replicas=2),
    }
    result = plan(pb, deps, LagReading(None, "broker down"))
    assert result.replicas == {"mail": 4, "rollups": 2}
    assert result.observed == {"mail": (None, 4), "rollups": (None, 2)}
    assert result.problem is not None
    assert result.problem.reason == "KafkaLagUnavailable"
    assert "broker down" in result.problem.message


def test_a_held_stack_announces_no_scaling() -> None:
    pb = pb_with()
    deps = {"demo-worker-mail": deployment("demo-worker-mail", replicas=1)}
    reading = LagReading.from_group_ids(pb, {"pb.mail": 400})
    result = plan(pb, deps, reading, held=True)
    assert result.replicas["mail"] == 4 and result.events == ()


def test_stack_replicas_from_the_spec_or_zero_while_held() -> None:
    pb = planboard(api={"replicas": 3}, relay={"replicas": 2})
    counts = scaling.stack_replicas(pb, {"mail": 2}, held=False)
    assert (counts.api, counts.relay, dict(counts.workers)) == (3, 2, {"mail": 2})
    defaults = scaling.stack_replicas(planboard(), {"mail": 1}, held=False)
    assert (defaults.api, defaults.relay) == (2, 1)
    hpa = planboard(api={"replicas": 3, "autoscaling": {"enabled": True}})
    assert scaling.stack_replicas(hpa, {}, held=False).api is None  # the HPA decides
    held = scaling.stack_replicas(hpa, {"mail": 2}, held=True)
    assert (held.api, held.relay, dict(held.workers)) == (0, 0, {"mail": 0})
