"""Search against the real stack: the ``search`` worker (session pipeline) indexes from
events; the API ranks, filters, paginates and isolates workspaces."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from planboard.services.search import reindex
from tests.utils.api import (
    add_member,
    expect,
    expect_problem,
    new_pat,
    new_project,
    new_task,
    new_user,
    new_workspace,
)


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 30.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            return await check()
        except AssertionError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.1)


def word() -> str:
    return "zq" + uuid.uuid4().hex[:8]  # a word no other test writes


async def search(client, headers: dict[str, str], **params: Any) -> Any:
    response = await client.get("/api/v1/search", params=params, headers=headers)
    return await expect(response, 200)


async def found(client, headers, expected: list[str], **params: Any) -> list[dict[str, Any]]:
    """Wait until the ids found are exactly ``expected`` (in that order)."""

    async def check() -> list[dict[str, Any]]:
        items = (await search(client, headers, **params))["items"]
        assert [i["id"] for i in items] == expected, items
        return list(items)

    return list(await eventually(check))


async def test_indexes_from_events_ranks_and_follows_updates_and_deletes(client) -> None:
    owner = await new_user(client)
    ws = await new_workspace(client, owner)
    w = word()
    project = await new_project(client, owner, ws, name=f"Rollout {w}", description="the plan")
    in_title = await new_task(client, owner, project["id"], title=f"Ship {w} now")
    in_body = await new_task(client, owner, project["id"], title="Other", description=f"{w} here")
    by_prefix = await new_task(client, owner, project["id"], title=f"{w}extended thing")
    comment = await expect(
        await client.post(
            f"/api/v1/tasks/{in_body['id']}/comments",
            json={"body": f"Déjà vu: {w.upper()}!"},
            headers=owner.headers,
        ),
        201,
    )
    # Exact title/name words first (newest first among equals), then the exact body
    # matches (task description, comment), then the prefix-only match.
    items = await found(
        client,
        owner.headers,
        [in_title["id"], project["id"], comment["id"], in_body["id"], by_prefix["id"]],
        q=w,
    )
    assert {i["type"] for i in items} == {"task", "project", "comment"}
    first = items[0]
    assert first["key"] == in_title["key"] and first["workspace_id"] == ws
    assert first["project_id"] == project["id"] and first["status"] == "todo"
    assert items[2]["task_id"] == in_body["id"] and items[2]["key"] == in_body["key"]
    # Prefix of a word, unicode and punctuation, the task key, several words.
    await found(client, owner.headers, [comment["id"]], q="DÉJÀ")
    await found(client, owner.headers, [in_title["id"]], q=f"{in_title['key']}")
    await found(client, owner.headers, [in_title["id"]], q=f"ship, {w[:5]}?")
    # An update re-indexes: the old word goes, the new one is found.
    w2 = word()
    patched = await client.patch(
        f"/api/v1/tasks/{in_title['id']}", json={"title": f"Renamed {w2}"}, headers=owner.headers
    )
    await expect(patched, 200)
    await found(client, owner.headers, [in_title["id"]], q=w2)
    await found(client, owner.headers, [], q=f"ship {w}")
    # Deleting a task removes it and its comments.
    await expect(await client.delete(f"/api/v1/tasks/{in_body['id']}", headers=owner.headers), 204)
    await found(client, owner.headers, [project["id"], by_prefix["id"]], q=w)


async def test_workspace_isolation_and_narrowing(client, db) -> None:
    alice, bob = await new_user(client), await new_user(client)
    ws_a, ws_b = await new_workspace(client, alice), await new_workspace(client, bob)
    ws_a2 = await new_workspace(client, alice)
    w = word()
    pa = await new_project(client, alice, ws_a, name=f"A {w}")
    pa2 = await new_project(client, alice, ws_a2, name=f"A2 {w}")
    pb = await new_project(client, bob, ws_b, name=f"B {w}")
    await found(client, alice.headers, [pa2["id"], pa["id"]], q=w)
    await found(client, bob.headers, [pb["id"]], q=w)
    await found(client, alice.headers, [pa["id"]], q=w, workspace_id=ws_a)
    # Another tenant's workspace is a 404, not an empty list; joining makes it visible.
    await expect_problem(
        await client.get(
            "/api/v1/search", params={"q": w, "workspace_id": ws_b}, headers=alice.headers
        ),
        404,
    )
    await add_member(db, ws_b, alice, "viewer")
    await found(client, alice.headers, [pb["id"]], q=w, workspace_id=ws_b)


async def test_a_project_the_caller_cannot_see_is_a_404_like_a_workspace(client) -> None:
    alice, bob = await new_user(client), await new_user(client)
    ws_a, ws_a2 = await new_workspace(client, alice), await new_workspace(client, alice)
    ws_b = await new_workspace(client, bob)
    w = word()
    pa = await new_project(client, alice, ws_a, name=f"A {w}")
    pa2 = await new_project(client, alice, ws_a2, name=f"A2 {w}")
    pb = await new_project(client, bob, ws_b, name=f"B {w}")
    await found(client, alice.headers, [pa["id"]], q=w, project_id=pa["id"])
    await found(client, alice.headers, [pa2["id"]], q=w, workspace_id=ws_a2, project_id=pa2["id"])
    refused = [
        {"project_id": pb["id"]},  # another tenant's project
        {"project_id": pb["id"], "workspace_id": ws_a},
        {"project_id": "0" * 24},  # no such project
        {"project_id": pa2["id"], "workspace_id": ws_a},  # the caller's, in another workspace
        {"workspace_id": ws_b},
    ]
    for params in refused:
        response = await client.get(
            "/api/v1/search", params={"q": w, **params}, headers=alice.headers
        )
        body = await expect_problem(response, 404)
        expected = "workspace" if "project_id" not in params else "project"
        assert body["detail"] == f"{expected} not found", (params, body)
    # bob sees his own project through the same filter
    await found(client, bob.headers, [pb["id"]], q=w, project_id=pb["id"])


async def test_filters(client) -> None:
    owner = await new_user(client)
    ws = await new_workspace(client, owner)
    w = word()
    p1 = await new_project(client, owner, ws, name="Filters one")
    p2 = await new_project(client, owner, ws, name="Filters two")
    t1 = await new_task(
        client, owner, p1["id"], title=f"{w} a", labels=["ops", "db"], assignee_id=owner.id
    )
    t2 = await new_task(client, owner, p1["id"], title=f"{w} b", labels=["ops"], status="done")
    t3 = await new_task(client, owner, p2["id"], title=f"{w} c", labels=["db"])
    h = owner.headers
    await found(client, h, [t3["id"], t2["id"], t1["id"]], q=w)
    await found(client, h, [t2["id"], t1["id"]], q=w, project_id=p1["id"])
    await found(client, h, [t2["id"]], q=w, status="done")
    await found(client, h, [t3["id"], t1["id"]], q=w, status="todo,in_progress")
    await found(client, h, [t1["id"]], q=w, label="ops,db")
    await found(client, h, [t1["id"]], q=w, assignee="me")
    await found(client, h, [t3["id"], t2["id"], t1["id"]], q=w, type="task")
    await found(client, h, [], q=w, type="comment")


async def test_cursor_pagination_walks_every_hit_once(client) -> None:
    owner = await new_user(client)
    ws = await new_workspace(client, owner)
    w = word()
    project = await new_project(client, owner, ws, name="Paging")
    created = await expect(
        await client.post(
            f"/api/v1/projects/{project['id']}/tasks/bulk",
            json={"tasks": [{"title": f"{w} {i}"} for i in range(25)]},
            headers=owner.headers,
        ),
        201,
    )
    ids = {t["id"] for t in created["items"]}

    async def indexed() -> None:
        assert len((await search(client, owner.headers, q=w, limit=100))["items"]) == 25

    await eventually(indexed)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"q": w, "limit": 10, **({"cursor": cursor} if cursor else {})}
        body = await search(client, owner.headers, **params)
        seen += [i["id"] for i in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert pages == 3 and len(seen) == 25 and set(seen) == ids
    # A cursor belongs to its query: reused with another q (or forged) it is refused.
    first = await search(client, owner.headers, q=w, limit=10)
    other = {"q": "other", "cursor": first["next_cursor"]}
    await expect_problem(
        await client.get("/api/v1/search", params=other, headers=owner.headers), 422, "cursor"
    )


async def test_token_scopes_choose_the_types(client) -> None:
    owner = await new_user(client)
    ws = await new_workspace(client, owner)
    w = word()
    project = await new_project(client, owner, ws, name=f"Scoped {w}")
    task = await new_task(client, owner, project["id"], title=f"Scoped {w}")
    await found(client, owner.headers, [task["id"], project["id"]], q=w)
    tasks_only = await new_pat(client, owner, ["tasks:read"])
    await found(client, tasks_only, [task["id"]], q=w)
    await expect_problem(
        await client.get("/api/v1/search", params={"q": w, "type": "project"}, headers=tasks_only),
        403,
    )
    nothing = await new_pat(client, owner, ["webhooks:read"])
    await expect_problem(await client.get("/api/v1/search", params={"q": w}, headers=nothing), 403)


async def test_bad_queries_are_problems(client) -> None:
    owner = await new_user(client)
    h = owner.headers
    for params, field in (
        ({}, "q"),
        ({"q": ""}, "q"),
        ({"q": "?!"}, "q"),
        ({"q": "x", "type": "user"}, "type"),
        ({"q": "x", "limit": "0"}, "limit"),
        ({"q": "x", "limit": "101"}, "limit"),
        ({"q": "x", "status": "nope"}, "status"),
        ({"q": "x", "cursor": "garbage"}, "cursor"),
        ({"q": "x", "unknown": "1"}, None),
        ({"q": "a b c d e f g h i"}, "q"),
    ):
        response = await client.get("/api/v1/search", params=params, headers=h)
        assert 400 <= response.status < 500, params
        await expect_problem(response, response.status, field)
    unauthenticated = await client.get("/api/v1/search", params={"q": "x"})
    await expect_problem(unauthenticated, 401)


async def test_reindex_rebuilds_a_workspace(client, db) -> None:
    owner = await new_user(client)
    ws = await new_workspace(client, owner)
    w = word()
    project = await new_project(client, owner, ws, name=f"Rebuilt {w}")
    task = await new_task(client, owner, project["id"], title=f"Rebuilt {w}")
    await found(client, owner.headers, [task["id"], project["id"]], q=w)
    await db.search_index.delete_many({"workspace_id": ws})
    await db.search_index.insert_one(
        {
            "_id": "task:stale",
            "type": "task",
            "entity_id": "stale",
            "workspace_id": ws,
            "terms": [w],
            "prefixes": [w],
            "title_terms": [w],
            "updated_ms": 1,
        }
    )
    steps: list[tuple[str, int]] = []
    report = await reindex(db, ws, progress=lambda kind, n: steps.append((kind, n)))
    assert (report.projects, report.tasks, report.comments, report.removed) == (1, 1, 0, 1)
    assert ("tasks", 1) in steps
    await found(client, owner.headers, [task["id"], project["id"]], q=w)
    again = await reindex(db, ws)
    assert (again.projects, again.tasks, again.removed) == (1, 1, 0)


async def test_comment_edits_and_project_deletion_reach_the_index(client) -> None:
    owner = await new_user(client)
    ws = await new_workspace(client, owner)
    w, w2 = word(), word()
    project = await new_project(client, owner, ws, name=f"Doomed {w}")
    task = await new_task(client, owner, project["id"], title=f"Doomed task {w}")
    comment = await expect(
        await client.post(
            f"/api/v1/tasks/{task['id']}/comments",
            json={"body": f"note {w}"},
            headers=owner.headers,
        ),
        201,
    )
    await found(client, owner.headers, [comment["id"]], q=w, type="comment")
    edited = await client.patch(
        f"/api/v1/comments/{comment['id']}", json={"body": f"note {w2}"}, headers=owner.headers
    )
    await expect(edited, 200)
    await found(client, owner.headers, [comment["id"]], q=w2)
    await found(client, owner.headers, [], q=w, type="comment")
    deleted = await client.delete(f"/api/v1/projects/{project['id']}", headers=owner.headers)
    await expect(deleted, 204)
    await found(client, owner.headers, [], q=w)
    await found(client, owner.headers, [], q=w2)


async def test_migration_9_moves_old_entries_to_the_text_index(mongo_client, settings) -> None:
    """Entries written before migration 9 (a ``prefixes`` array, no ``tokens``) are found
    by the text-index query once it ran, and lose the array."""
    from planboard.services.search import prefixes_of, words
    from planboard.store import migrations
    from planboard.store.search import token

    db = mongo_client[f"{settings.mongodb_db}_m9"]
    try:
        await migrations.migrate(db)
        terms = words("Migrate the legacy entry x")
        await db.search_index.insert_one(
            {
                "_id": "task:legacy",
                "type": "task",
                "workspace_id": "w",
                "terms": terms,
                "prefixes": prefixes_of(terms),
                "updated_ms": 1,
            }
        )
        await migrations._search_text(db)  # what migration 9 does, on the old entry
        doc = await db.search_index.find_one({"_id": "task:legacy"})
        assert doc is not None and "prefixes" not in doc and doc["tokens"]
        query = " ".join(f'"{token(w)}"' for w in ("legac", "x", "migrate"))
        found = [d["_id"] async for d in db.search_index.find({"$text": {"$search": query}})]
        assert found == ["task:legacy"]
        keys = [dict(ix["key"]) async for ix in await db.search_index.list_indexes()]
        assert not any("prefixes" in key for key in keys)
    finally:
        await mongo_client.drop_database(db.name)
