"""GET /projects/{id}/tasks: filters, sorts with a stable tie-break, cursors, sparse fields."""

from __future__ import annotations

import pytest

from tests.utils.api import (
    add_member,
    expect,
    expect_problem,
    new_project,
    new_task,
    new_user,
    new_workspace,
    tasks_of,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def world(client, db):
    """One project with 12 varied tasks (module-scoped: the lists only read it)."""
    owner, mate = await new_user(client), await new_user(client)
    workspace_id = await new_workspace(client, owner)
    await add_member(db, workspace_id, mate, "member")
    project = await new_project(client, owner, workspace_id, name="Lists", key="LST")
    for name in ("Alpha", "Beta"):
        await expect(
            await client.post(
                f"/api/v1/projects/{project['id']}/phases",
                json={"name": name},
                headers=owner.headers,
            ),
            201,
        )
    specs = [
        # title, status, phase, assignee, labels, due, estimate
        ("zeta", "todo", "Alpha", owner.id, ["ui"], "2026-03-01", 3),
        ("Eta", "in_progress", "Alpha", mate.id, ["api", "ui"], None, 3),
        ("theta", "done", "Beta", None, [], "2026-01-15", None),
        ("iota", "blocked", "Beta", owner.id, ["api"], "2026-02-01", 1.5),
        ("kappa", "todo", None, None, ["ops"], "2026-03-01", 8),
        ("lambda", "cancelled", "Alpha", mate.id, [], None, 0),
        ("mu", "todo", "Beta", None, ["ui"], "2025-12-31", 3),
        ("nu", "todo", "Alpha", owner.id, [], "2026-02-01", None),
        ("xi", "in_progress", None, mate.id, ["api"], "2026-01-15", 5),
        ("omicron", "todo", "Beta", None, ["ui", "ops"], None, 2),
        ("pi", "done", "Alpha", owner.id, [], "2026-04-01", 3),
        ("2026-01-05", "todo", "Beta", None, [], None, 1),  # a title that looks like a date
    ]
    tasks = []
    for title, status, phase, assignee, labels, due, estimate in specs:
        tasks.append(
            await new_task(
                client,
                owner,
                project["id"],
                title=title,
                status=status,
                phase=phase,
                assignee_id=assignee,
                labels=labels,
                due_date=due,
                estimate_hours=estimate,
            )
        )
    by_title = {t["title"]: t for t in tasks}
    # kappa waits for zeta (open) and theta (done); mu waits for pi (done)
    for task, blocker in (("kappa", "zeta"), ("kappa", "theta"), ("mu", "pi")):
        await expect(
            await client.post(
                f"/api/v1/tasks/{by_title[task]['id']}/dependencies",
                json={"blocked_by": by_title[blocker]["id"]},
                headers=owner.headers,
            ),
            201,
        )
    return {"owner": owner, "mate": mate, "project": project, "tasks": by_title}


async def titles(client, world, **params) -> list[str]:
    return [
        t["title"] for t in await tasks_of(client, world["owner"], world["project"]["id"], **params)
    ]


async def test_default_order_is_by_key(client, world):
    assert await titles(client, world) == list(world["tasks"])


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": "todo"}, {"zeta", "kappa", "mu", "nu", "omicron", "2026-01-05"}),
        ({"status": "done,cancelled"}, {"theta", "lambda", "pi"}),
        ({"status": ["in_progress", "blocked"]}, {"Eta", "iota", "xi"}),
        ({"phase": "Beta"}, {"theta", "iota", "mu", "omicron", "2026-01-05"}),
        ({"label": "api"}, {"Eta", "iota", "xi"}),
        ({"label": "ops,api"}, {"Eta", "iota", "xi", "kappa", "omicron"}),
        ({"due_before": "2026-01-15"}, {"theta", "mu", "xi"}),
        ({"due_after": "2026-03-01"}, {"zeta", "kappa", "pi"}),
        ({"due_after": "2026-01-16", "due_before": "2026-02-28"}, {"iota", "nu"}),
        ({"ready": "true"}, {"zeta", "Eta", "iota", "mu", "nu", "xi", "omicron", "2026-01-05"}),
        ({"ready": "false"}, {"theta", "kappa", "lambda", "pi"}),
        ({"status": "todo", "ready": "true", "phase": "Beta"}, {"mu", "2026-01-05", "omicron"}),
    ],
)
async def test_filters(client, world, params, expected):
    assert set(await titles(client, world, **params)) == expected


async def test_filter_by_phase_id_and_assignee(client, world):
    project = world["project"]
    phase_id = world["tasks"]["zeta"]["phase_id"]
    assert set(await titles(client, world, phase=phase_id)) == {"zeta", "Eta", "lambda", "nu", "pi"}
    assert set(await titles(client, world, assignee=world["mate"].id)) == {"Eta", "lambda", "xi"}
    assert set(await titles(client, world, assignee="me")) == {"zeta", "iota", "nu", "pi"}
    unknown = await client.get(
        f"/api/v1/projects/{project['id']}/tasks",
        params={"phase": "Gamma"},
        headers=world["owner"].headers,
    )
    await expect_problem(unknown, 422, "phase")


@pytest.mark.parametrize(
    "sort",
    [
        "key",
        "-key",
        "due_date",
        "-due_date",
        "estimate_hours",
        "-estimate_hours",
        "title",
        "-title",
        "updated_at",
        "-updated_at",
        "created_at",
        "-created_at",
    ],
)
@pytest.mark.parametrize("limit", [1, 5, 200])
async def test_every_sort_pages_through_everything_once_in_order(client, world, sort, limit):
    owner, project = world["owner"], world["project"]
    seen: list[dict] = []
    cursor = None
    pages = 0
    while True:
        params = {"sort": sort, "limit": str(limit)}
        if cursor:
            params["cursor"] = cursor
        body = await expect(
            await client.get(
                f"/api/v1/projects/{project['id']}/tasks", params=params, headers=owner.headers
            ),
            200,
        )
        assert len(body["items"]) <= limit
        seen += body["items"]
        pages += 1
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert sorted(t["id"] for t in seen) == sorted(t["id"] for t in world["tasks"].values())
    assert len(seen) == len({t["id"] for t in seen})
    field = sort.lstrip("-")
    descending = sort.startswith("-")

    def key(task):
        value = task[field]
        if field == "key":
            value = int(task["key"].split("-")[1])
        elif field == "title":
            value = value.casefold()
        elif field == "due_date":
            value = value or ""
        elif field == "estimate_hours":
            value = -1.0 if value is None else value
        return (value, task["id"])

    assert seen == sorted(seen, key=key, reverse=descending)


async def test_sparse_fields_on_lists(client, world):
    owner, project = world["owner"], world["project"]
    body = await expect(
        await client.get(
            f"/api/v1/projects/{project['id']}/tasks",
            params={"fields": "key,ready", "limit": "2"},
            headers=owner.headers,
        ),
        200,
    )
    assert [set(t) for t in body["items"]] == [{"id", "key", "ready"}] * 2
    # fields do not bind the cursor: the next page may ask for other fields
    nxt = await expect(
        await client.get(
            f"/api/v1/projects/{project['id']}/tasks",
            params={"fields": "title", "limit": "2", "cursor": body["next_cursor"]},
            headers=owner.headers,
        ),
        200,
    )
    assert [t["title"] for t in nxt["items"]] == ["theta", "iota"]


async def test_cursors_are_bound_to_their_list(client, world):
    owner, project = world["owner"], world["project"]
    url = f"/api/v1/projects/{project['id']}/tasks"
    first = await expect(
        await client.get(url, params={"limit": "2", "status": "todo"}, headers=owner.headers), 200
    )
    cursor = first["next_cursor"]
    ok = await expect(
        await client.get(
            url, params={"limit": "2", "status": "todo", "cursor": cursor}, headers=owner.headers
        ),
        200,
    )
    assert [t["title"] for t in ok["items"]] == ["mu", "nu"]
    for params in (
        {"status": "done", "cursor": cursor},
        {"status": "todo", "sort": "-key", "cursor": cursor},
        {"cursor": cursor},
        {"status": "todo", "cursor": cursor[:-2] + "xx"},
        {"status": "todo", "cursor": "garbage"},
    ):
        await expect_problem(
            await client.get(url, params=params, headers=owner.headers), 422, "cursor"
        )
    other = await new_project(client, owner, project["workspace_id"], name="Other list")
    await new_task(client, owner, other["id"])
    await expect_problem(
        await client.get(
            f"/api/v1/projects/{other['id']}/tasks",
            params={"status": "todo", "cursor": cursor},
            headers=owner.headers,
        ),
        422,
        "cursor",
    )


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "201"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"status": "doing"}, "status"),
        ({"sort": "priority"}, "sort"),
        ({"sort": "--key"}, "sort"),
        ({"due_before": "2026-02-30"}, "due_before"),
        ({"due_after": "yesterday"}, "due_after"),
        ({"ready": "maybe"}, "ready"),
        ({"fields": "id,secret"}, "fields"),
        ({"assignee": "not-an-id"}, "assignee"),
        ({"colour": "red"}, "colour"),
        ({"cursor": "x" * 600}, "cursor"),
    ],
)
async def test_bad_list_parameters(client, world, params, field):
    response = await client.get(
        f"/api/v1/projects/{world['project']['id']}/tasks",
        params=params,
        headers=world["owner"].headers,
    )
    await expect_problem(response, 422, field)
