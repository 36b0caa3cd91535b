"""The near cache's rules (services/near_cache.py), without Redis: what it holds, what an
invalidation kills, and that a fill racing an invalidation is never stored."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from planboard.services import near_cache
from planboard.services.near_cache import ALL, NearCache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def live(**kwargs: object) -> NearCache:
    near = NearCache(**kwargs)  # type: ignore[arg-type]
    near.set_live(True)
    return near


def test_serves_what_it_holds_until_a_tag_is_invalidated() -> None:
    near = live()
    assert near.put("task:1", {"v": 1}, ("p:a",), stamp=near.stamp(), size=10)
    assert near.put("task:2", {"v": 2}, ("p:b",), stamp=near.stamp(), size=10)
    assert near.get("task:1") == {"v": 1}
    near.invalidate(["p:a"])
    assert near.get("task:1") is None
    assert near.get("task:2") == {"v": 2}  # other tags untouched
    assert near.size == 1 and near.bytes == 10


def test_a_fill_that_raced_an_invalidation_is_refused() -> None:
    near = live()
    stamp = near.stamp()  # the reader starts…
    near.invalidate(["p:a"])  # …a write's message arrives while it reads…
    assert not near.put("task:1", "old", ("p:a",), stamp=stamp, size=1)  # …refused
    assert near.get("task:1") is None
    # another tag's invalidation does not refuse it
    stamp = near.stamp()
    near.invalidate(["p:other"])
    assert near.put("task:1", "new", ("p:a",), stamp=stamp, size=1)
    assert near.get("task:1") == "new"


def test_nothing_is_held_or_served_unless_live() -> None:
    near = NearCache()
    assert not near.live
    assert not near.put("k", 1, ("t",), stamp=near.stamp(), size=1)
    near.set_live(True)
    stamp = near.stamp()
    assert near.put("k", 1, ("t",), stamp=stamp, size=1)
    near.set_live(False)  # the listener lost Redis: everything goes
    assert near.get("k") is None and near.size == 0
    near.set_live(True)
    # a read that started before the reconnection must not be stored after it
    assert not near.put("k", 1, ("t",), stamp=stamp, size=1)


def test_all_drops_everything_and_refuses_older_fills() -> None:
    near = live()
    stamp = near.stamp()
    near.put("a", 1, ("t1",), stamp=stamp, size=1)
    near.put("b", 2, ("t2",), stamp=stamp, size=1)
    near.invalidate([ALL])
    assert near.size == 0 and near.bytes == 0
    assert not near.put("a", 1, ("t1",), stamp=stamp, size=1)
    assert near.live  # still listening


def test_entries_expire_after_the_ttl() -> None:
    clock = Clock()
    near = live(ttl_s=5.0, clock=clock)
    near.put("k", 1, ("t",), stamp=near.stamp(), size=1)
    clock.now += 4.9
    assert near.get("k") == 1
    clock.now += 0.2
    assert near.get("k") is None and near.size == 0


def test_bounded_by_bytes_oldest_first_and_huge_values_refused() -> None:
    near = live(max_bytes=800)
    for i in range(10):
        assert near.put(f"k{i}", i, (f"t{i}",), stamp=near.stamp(), size=100)
    assert near.bytes <= 800
    assert near.get("k0") is None and near.get("k1") is None  # the oldest went
    assert near.get("k9") == 9
    assert not near.put("big", "x", ("t",), stamp=near.stamp(), size=101)  # > max_bytes / 8
    near.invalidate(["t0", "t9"])  # tags of evicted entries are harmless
    assert near.get("k9") is None


def test_disabled_never_goes_live() -> None:
    near = NearCache(max_bytes=0)
    near.set_live(True)
    assert not near.enabled and not near.live


def test_remembered_tags_are_bounded(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(near_cache, "MAX_TAGS", 10)
    near = live()
    stamp = near.stamp()
    near.invalidate([f"t{i}" for i in range(11)])  # past the bound: forgets the tags…
    assert len(near._invalidated_at) == 0
    # …so every fill stamped before it is refused, whatever its tag
    assert not near.put("k", 1, ("unrelated",), stamp=stamp, size=1)
    assert near.put("k", 1, ("unrelated",), stamp=near.stamp(), size=1)


# A model-based check: random interleavings of reads (stamp … put), invalidations,
# reconnections and gets. Whatever the order, a get never returns a value written under
# a tag that was invalidated after the read that produced it began.

TAGS = ["p:a", "p:b", "m:w"]
ops = st.lists(
    st.one_of(
        st.tuples(st.just("begin"), st.integers(0, 3), st.sampled_from(TAGS)),
        st.tuples(st.just("finish"), st.integers(0, 3)),
        st.tuples(st.just("invalidate"), st.sampled_from([*TAGS, ALL])),
        st.tuples(st.just("reconnect")),
        st.tuples(st.just("get"), st.integers(0, 3)),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(ops)
def test_never_serves_a_value_older_than_an_invalidation_of_its_tag(plan: list[tuple]) -> None:  # type: ignore[type-arg]
    near = live()
    version = dict.fromkeys(TAGS, 0)  # bumped by every invalidation: the "truth"
    reads: dict[int, tuple[int, str, int]] = {}  # reader -> (stamp, tag, version read)
    for op in plan:
        kind = op[0]
        if kind == "begin":
            _, reader, tag = op
            reads[reader] = (near.stamp(), tag, version[tag])
        elif kind == "finish":
            started = reads.pop(op[1], None)
            if started is not None:
                stamp, tag, seen = started
                near.put(f"k:{tag}", (tag, seen), (tag,), stamp=stamp, size=1)
        elif kind == "invalidate":
            tags = TAGS if op[1] == ALL else [op[1]]
            for tag in tags:
                version[tag] += 1
            near.invalidate([op[1]])
        elif kind == "reconnect":
            near.set_live(False)
            for tag in TAGS:  # messages may have been missed while disconnected
                version[tag] += 1
            near.set_live(True)
        else:
            for tag in TAGS:
                found = near.get(f"k:{tag}")
                if found is not None:
                    assert found == (tag, version[tag]), "served a value an invalidation killed"
