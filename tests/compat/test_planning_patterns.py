"""The MongoDB patterns the planning code (projects, tasks, dependencies, comments,
activity, idempotency keys) relies on, each in the form the code uses.

Gaps found while building it (nx-27017 0.8.1), and how the code avoids them:
- A string that looks like an ISO date (``2026-01-05``) is compared as a date: only
  against other date-like strings; the empty string never compares lower. Plain date
  fields (``due_date``) are only compared with dates; sort shadows carry a prefix
  (``d:2026-01-05``, ``t:title``, ``n:name``) and are never empty.
- Datetimes are compared only to the second in filters (equality matches the whole
  second, ``$gt`` within it matches nothing). Keyset pagination by time uses integer
  milliseconds (``created_ms`` / ``updated_ms``).
- ``{"array": {"$ne": x}}`` does not apply to array elements (it matched a document
  whose array holds x); ``$not`` is not implemented. Edges are added under a version
  guard instead of an ``$ne`` test.
- ``$set`` of a ``bytes`` value fails ("Object of type bytes is not JSON serializable")
  although inserting one works: stored responses are text.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

Db = AsyncDatabase[dict[str, Any]]
Coll = AsyncCollection[dict[str, Any]]


async def page_through(
    coll: Coll, query: dict[str, Any], field: str, descending: bool, limit: int
) -> list[str]:
    """The code's keyset pagination: ``(field, _id)`` order, "after (value, id)" filters."""
    direction = DESCENDING if descending else ASCENDING
    op = "$lt" if descending else "$gt"
    seen: list[str] = []
    after: tuple[Any, str] | None = None
    while True:
        full = query
        if after is not None:
            value, last = after
            keyset = {"$or": [{field: {op: value}}, {field: value, "_id": {op: last}}]}
            full = {"$and": [query, keyset]}
        docs = [
            d
            async for d in coll.find(
                full, sort=[(field, direction), ("_id", direction)], limit=limit + 1
            )
        ]
        seen += [d["_id"] for d in docs[:limit]]
        if len(docs) <= limit:
            return seen
        after = (docs[limit - 1][field], docs[limit - 1]["_id"])


TASKS: list[dict[str, Any]] = [
    {"_id": "t01", "due_sort": "d:", "estimate_sort": -1.0, "title_sort": "t:zeta", "seq": 1},
    {
        "_id": "t02",
        "due_sort": "d:2026-03-01",
        "estimate_sort": 3.0,
        "title_sort": "t:eta",
        "seq": 2,
    },
    {
        "_id": "t03",
        "due_sort": "d:2026-01-15",
        "estimate_sort": 3.0,
        "title_sort": "t:2026-01-05",
        "seq": 3,
    },
    {"_id": "t04", "due_sort": "d:2026-03-01", "estimate_sort": 1.5, "title_sort": "t:", "seq": 4},
    {"_id": "t05", "due_sort": "d:", "estimate_sort": 8.0, "title_sort": "t:eta", "seq": 5},
    {
        "_id": "t06",
        "due_sort": "d:2025-12-31",
        "estimate_sort": -1.0,
        "title_sort": "t:éclair",
        "seq": 6,
    },
    {
        "_id": "t07",
        "due_sort": "d:2026-03-01",
        "estimate_sort": 3.0,
        "title_sort": "t:東京",
        "seq": 7,
    },
]


@pytest.fixture
async def tasks(db: Db) -> Coll:
    coll = db["tasks"]
    await coll.insert_many([{**t, "project_id": "p1"} for t in TASKS])
    await coll.insert_one({"_id": "x01", "project_id": "p2", "due_sort": "d:", "seq": 1})
    return coll


@pytest.mark.parametrize("field", ["due_sort", "estimate_sort", "title_sort", "seq"])
@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("limit", [1, 2, 3, 50])
async def test_keyset_pagination_over_sort_shadows(
    tasks: Coll, field: str, descending: bool, limit: int
) -> None:
    expected = [
        t["_id"] for t in sorted(TASKS, key=lambda t: (t[field], t["_id"]), reverse=descending)
    ]
    assert await page_through(tasks, {"project_id": "p1"}, field, descending, limit) == expected


async def test_keyset_pagination_combined_with_id_sets(tasks: Coll) -> None:
    """The ``ready`` filter is an ``_id`` ``$in`` / ``$nin`` next to the keyset ``$or``."""
    ready = ["t02", "t03", "t05", "t07"]
    query = {"project_id": "p1", "_id": {"$in": ready}}
    assert await page_through(tasks, query, "due_sort", False, 1) == ["t05", "t03", "t02", "t07"]
    query = {"project_id": "p1", "_id": {"$nin": ready}}
    assert await page_through(tasks, query, "estimate_sort", True, 2) == ["t04", "t06", "t01"]


async def test_keyset_pagination_by_integer_milliseconds(db: Db) -> None:
    coll = db["times"]
    base = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)
    docs = [
        {
            "_id": f"m{n:02}",
            "updated_ms": int((base + timedelta(milliseconds=n // 3 * 7)).timestamp() * 1000),
        }
        for n in range(10)
    ]
    await coll.insert_many(docs)
    expected = [d["_id"] for d in sorted(docs, key=lambda d: (d["updated_ms"], d["_id"]))]
    assert await page_through(coll, {}, "updated_ms", False, 2) == expected
    assert await page_through(coll, {}, "updated_ms", True, 3) == list(reversed(expected))


async def test_prefixed_string_shadows_compare_lexicographically(db: Db) -> None:
    coll = db["shadows"]
    values = ["d:", "d:2026-01-05", "d:2026-03-01", "t:2026-01-05", "t:abc", "t:", "n:zürich"]
    await coll.insert_many([{"_id": f"s{n}", "v": v} for n, v in enumerate(values)])
    for value in values:
        lower = {d["v"] async for d in coll.find({"v": {"$lt": value}})}
        assert lower == {v for v in values if v < value}, value
        assert [d["v"] async for d in coll.find({"v": value})] == [value]


async def test_date_fields_in_ranges_skip_missing_dates(db: Db) -> None:
    """``due_before`` / ``due_after``: ISO date strings compared with ISO date strings."""
    coll = db["due"]
    await coll.insert_many(
        [
            {"_id": 1, "due_date": None},
            {"_id": 2, "due_date": "2026-01-15"},
            {"_id": 3, "due_date": "2026-02-01"},
            {"_id": 4, "due_date": "2026-03-01"},
        ]
    )
    found = [
        d["_id"] async for d in coll.find({"due_date": {"$lte": "2026-02-01"}}, sort=[("_id", 1)])
    ]
    assert found == [2, 3]
    found = [
        d["_id"]
        async for d in coll.find(
            {"due_date": {"$gte": "2026-01-16", "$lte": "2026-03-01"}}, sort=[("_id", 1)]
        )
    ]
    assert found == [3, 4]


async def test_filters_the_task_list_uses(db: Db) -> None:
    coll = db["filters"]
    await coll.insert_many(
        [
            {
                "_id": "a",
                "project_id": "p",
                "status": "todo",
                "labels": ["ui"],
                "phase_id": "f1",
                "assignee_id": "u1",
            },
            {
                "_id": "b",
                "project_id": "p",
                "status": "done",
                "labels": ["api", "ui"],
                "phase_id": None,
                "assignee_id": None,
            },
            {
                "_id": "c",
                "project_id": "p",
                "status": "blocked",
                "labels": [],
                "phase_id": "f2",
                "assignee_id": "u1",
            },
            {
                "_id": "d",
                "project_id": "q",
                "status": "todo",
                "labels": ["ui"],
                "phase_id": "f1",
                "assignee_id": "u1",
            },
        ]
    )

    async def ids(query: dict[str, Any]) -> list[str]:
        return [d["_id"] async for d in coll.find({"project_id": "p", **query}, sort=[("_id", 1)])]

    assert await ids({"status": {"$in": ["todo", "blocked"]}}) == ["a", "c"]
    assert await ids({"labels": {"$in": ["api", "ops"]}}) == ["b"]
    assert await ids({"labels": {"$in": ["ui"]}}) == ["a", "b"]
    assert await ids({"phase_id": "f1"}) == ["a"]
    assert await ids({"assignee_id": "u1"}) == ["a", "c"]
    assert (
        await coll.count_documents(
            {"project_id": "p", "$or": [{"labels": "api"}, {"status": "todo"}]}
        )
        == 2
    )


async def test_phase_counts_group_by_one_field_including_null(db: Db) -> None:
    coll = db["grouped"]
    await coll.insert_many(
        [
            {"_id": "1", "project_id": "p", "phase_id": "f1"},
            {"_id": "2", "project_id": "p", "phase_id": "f1"},
            {"_id": "3", "project_id": "p", "phase_id": None},
            {"_id": "4", "project_id": "q", "phase_id": "f1"},
        ]
    )
    pipeline: list[dict[str, Any]] = [
        {"$match": {"project_id": "p"}},
        {"$group": {"_id": "$phase_id", "n": {"$sum": 1}}},
    ]
    found = {d["_id"]: d["n"] async for d in await coll.aggregate(pipeline)}
    assert found == {"f1": 2, None: 1}


async def test_version_guarded_update_with_set_unset_and_inc(db: Db) -> None:
    coll = db["guarded"]
    await coll.insert_one({"_id": "t", "title": "a", "plan_ref": "R1", "version": 1})
    result = await coll.update_one(
        {"_id": "t", "version": 1},
        {"$set": {"title": "b"}, "$unset": {"plan_ref": ""}, "$inc": {"version": 1}},
    )
    assert result.matched_count == 1
    stale = await coll.update_one(
        {"_id": "t", "version": 1}, {"$set": {"title": "lost"}, "$inc": {"version": 1}}
    )
    assert stale.matched_count == 0
    assert await coll.find_one({"_id": "t"}) == {"_id": "t", "title": "b", "version": 2}
    assert (await coll.delete_one({"_id": "t", "version": 1})).deleted_count == 0
    assert (await coll.delete_one({"_id": "t", "version": 2})).deleted_count == 1


async def test_concurrent_version_guarded_updates_let_one_win(db: Db) -> None:
    coll = db["race"]
    await coll.insert_one({"_id": "t", "version": 1})
    results = await asyncio.gather(
        *(
            coll.update_one({"_id": "t", "version": 1}, {"$set": {"w": n}, "$inc": {"version": 1}})
            for n in range(20)
        )
    )
    assert sum(r.matched_count for r in results) == 1
    assert (await coll.find_one({"_id": "t"}))["version"] == 2


async def test_optional_unique_plan_refs(db: Db) -> None:
    """Partial unique (project_id, plan_ref): absent refs never clash; update_one raises."""
    coll = db["refs"]
    await coll.create_index(
        [("project_id", ASCENDING), ("plan_ref", ASCENDING)],
        unique=True,
        partialFilterExpression={"plan_ref": {"$exists": True}},
    )
    await coll.insert_many(
        [
            {"_id": "1", "project_id": "p", "plan_ref": "T1"},
            {"_id": "2", "project_id": "p"},
            {"_id": "3", "project_id": "p"},
            {"_id": "4", "project_id": "q", "plan_ref": "T1"},
        ]
    )
    with pytest.raises(DuplicateKeyError):
        await coll.insert_one({"_id": "5", "project_id": "p", "plan_ref": "T1"})
    with pytest.raises(DuplicateKeyError):
        await coll.update_one(
            {"_id": "2", "version": {"$exists": False}}, {"$set": {"plan_ref": "T1"}}
        )
    await coll.update_one({"_id": "1"}, {"$unset": {"plan_ref": ""}})
    await coll.update_one({"_id": "2"}, {"$set": {"plan_ref": "T1"}})
    assert await coll.count_documents({"project_id": "p", "plan_ref": {"$in": ["T1"]}}) == 1


async def test_edges_add_to_set_and_pull_with_counters(db: Db) -> None:
    coll = db["edges"]
    await coll.insert_many(
        [
            {"_id": "a", "project_id": "p", "blocked_by": [], "blocks": ["b", "c"], "version": 1},
            {"_id": "b", "project_id": "p", "blocked_by": ["a"], "blocks": [], "version": 1},
            {"_id": "c", "project_id": "p", "blocked_by": ["a", "b"], "blocks": [], "version": 1},
        ]
    )
    now = datetime(2026, 1, 1, tzinfo=UTC)
    await coll.update_one(
        {"_id": "b"},
        {"$addToSet": {"blocks": "c"}, "$inc": {"version": 1}, "$set": {"updated_at": now}},
    )
    await coll.update_one({"_id": "b"}, {"$addToSet": {"blocks": "c"}, "$inc": {"version": 1}})
    assert (await coll.find_one({"_id": "b"}))["blocks"] == ["c"]
    assert await coll.count_documents({"$or": [{"blocked_by": "a"}, {"blocks": "a"}]}) == 2
    # detaching a deleted task: pull its id from every task that names it
    for field in ("blocked_by", "blocks"):
        await coll.update_many(
            {"project_id": "p", field: "a"}, {"$pull": {field: "a"}, "$inc": {"version": 1}}
        )
    docs = {d["_id"]: d async for d in coll.find({})}
    assert (docs["a"]["blocks"], docs["b"]["blocked_by"], docs["c"]["blocked_by"]) == (
        ["b", "c"],
        [],
        ["b"],
    )
    assert (docs["b"]["version"], docs["c"]["version"]) == (4, 2)
    assert await coll.count_documents({"$or": [{"blocked_by": "a"}, {"blocks": "a"}]}) == 0


async def test_edge_reservations_in_the_project_document(db: Db) -> None:
    """``graph_version`` compare-and-increment publishing ``graph_pending`` subdocuments;
    a counter missing on old documents is guarded with ``$exists: false``."""
    coll = db["projects"]
    await coll.insert_one({"_id": "p", "phases": []})
    at = datetime(2026, 1, 1, tzinfo=UTC)
    first = {"id": "r1", "task": "a", "blocker": "b", "at": at}
    won = await coll.update_one(
        {"_id": "p", "graph_version": {"$exists": False}},
        {"$set": {"graph_version": 1, "graph_pending": [first]}},
    )
    assert won.matched_count == 1
    lost = await coll.update_one(
        {"_id": "p", "graph_version": {"$exists": False}},
        {"$set": {"graph_version": 1, "graph_pending": []}},
    )
    assert lost.matched_count == 0
    second = {"id": "r2", "task": "c", "blocker": "d", "at": at}
    await coll.update_one(
        {"_id": "p", "graph_version": 1},
        {"$set": {"graph_version": 2, "graph_pending": [first, second]}},
    )
    await coll.update_one(
        {"_id": "p"}, {"$pull": {"graph_pending": {"id": "r1"}}, "$inc": {"graph_version": 1}}
    )
    doc = await coll.find_one({"_id": "p"})
    assert doc is not None
    assert (doc["graph_version"], doc["graph_pending"]) == (3, [second])
    await coll.update_one({"_id": "p"}, {"$inc": {"graph_version": 1}})
    assert (await coll.find_one({"_id": "p"}))["graph_version"] == 4


async def test_phases_replaced_whole_under_their_counter(db: Db) -> None:
    coll = db["phased"]
    await coll.insert_one(
        {"_id": "p", "phases": [{"id": "1", "name": "A", "position": 0}], "phases_version": 1}
    )
    phases = [
        {"id": "2", "name": "B", "estimate_hours": 2.5, "position": 0},
        {"id": "1", "name": "A", "estimate_hours": None, "position": 1},
    ]
    done = await coll.update_one(
        {"_id": "p", "phases_version": 1}, {"$set": {"phases": phases, "phases_version": 2}}
    )
    stale = await coll.update_one(
        {"_id": "p", "phases_version": 1}, {"$set": {"phases": [], "phases_version": 2}}
    )
    assert (done.matched_count, stale.matched_count) == (1, 0)
    assert (await coll.find_one({"_id": "p"}))["phases"] == phases
    moved = await db["tasks"].insert_many(
        [{"_id": n, "phase_id": "1", "version": 1} for n in range(3)]
    )
    assert len(moved.inserted_ids) == 3
    result = await db["tasks"].update_many(
        {"phase_id": "1"}, {"$set": {"phase_id": "2"}, "$inc": {"version": 1}}
    )
    assert result.modified_count == 3


async def test_activity_entries_with_mixed_before_after_values(db: Db) -> None:
    coll = db["activity"]
    entries = [
        {
            "_id": f"{n:024x}",
            "project_id": "p",
            "task_id": "t" if n % 2 else "u",
            "changes": [
                {"field": "labels", "before": [], "after": ["a", "b"]},
                {"field": "estimate_hours", "before": None, "after": 2.5},
                {"field": "checklist", "before": [{"text": "x", "done": False}], "after": []},
            ],
            "data": {"title": "Título ✓"},
        }
        for n in range(7)
    ]
    await coll.insert_many(entries)
    assert await coll.find_one({"_id": entries[3]["_id"]}) == entries[3]
    newest = [
        d["_id"] async for d in coll.find({"task_id": "t"}, sort=[("_id", DESCENDING)], limit=2)
    ]
    assert newest == [entries[5]["_id"], entries[3]["_id"]]
    older = [
        d["_id"]
        async for d in coll.find({"task_id": "t", "_id": {"$lt": newest[-1]}}, sort=[("_id", -1)])
    ]
    assert older == [entries[1]["_id"]]
    assert (await coll.delete_many({"project_id": "p"})).deleted_count == 7


async def test_idempotency_records(db: Db) -> None:
    """Claim by unique ``_id``, complete with a text body, take over by claim, expire."""
    coll = db["idempotency_keys"]
    await coll.create_index("expires_at", expireAfterSeconds=0)
    now = datetime.now(UTC).replace(microsecond=0)
    record = {
        "_id": "k" * 64,
        "state": "running",
        "claim": "c1",
        "expires_at": now + timedelta(hours=24),
    }
    await coll.insert_one(record)
    with pytest.raises(DuplicateKeyError):
        await coll.insert_one({**record, "claim": "c2"})
    response = {
        "status": 201,
        "headers": {"Content-Type": "application/json", "Location": "/api/v1/projects/1"},
        "body": '{"name": "Zürich ✓"}',
        "withheld": False,
    }
    done = await coll.update_one(
        {"_id": record["_id"], "claim": "c1"}, {"$set": {"state": "done", "response": response}}
    )
    assert done.matched_count == 1
    stored = await coll.find_one({"_id": record["_id"]})
    assert stored is not None and stored["response"] == response
    taken = await coll.update_one(
        {"_id": record["_id"], "claim": "c1"}, {"$set": {"claim": "c3", "state": "running"}}
    )
    stale = await coll.update_one({"_id": record["_id"], "claim": "c1"}, {"$set": {"claim": "c4"}})
    assert (taken.matched_count, stale.matched_count) == (1, 0)
    assert (await coll.delete_one({"_id": record["_id"], "claim": "c3"})).deleted_count == 1
