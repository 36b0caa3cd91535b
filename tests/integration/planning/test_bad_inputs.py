"""Every bad input is a 4xx problem+json naming the field, never a 500, and changes nothing."""

from __future__ import annotations

import pytest

from tests.utils.api import by_ref, expect, expect_problem, import_plan, new_user, new_workspace

pytestmark = pytest.mark.integration

HEX = "0123456789abcdef01234567"  # a well-formed id that names nothing

# (method, path, body or None, query or None, status, field); see ``fill`` for the {names}
CASES = [
    # --- projects
    ("POST", "/api/v1/workspaces/{w}/projects", {}, None, 422, "name"),
    ("POST", "/api/v1/workspaces/{w}/projects", {"name": ""}, None, 422, "name"),
    ("POST", "/api/v1/workspaces/{w}/projects", {"name": "   "}, None, 422, "name"),
    ("POST", "/api/v1/workspaces/{w}/projects", {"name": "x" * 201}, None, 422, "name"),
    ("POST", "/api/v1/workspaces/{w}/projects", {"name": 5}, None, 422, "name"),
    ("POST", "/api/v1/workspaces/{w}/projects", {"name": "bell\u0007"}, None, 422, "name"),
    ("POST", "/api/v1/workspaces/{w}/projects", {"name": "x", "key": "1AB"}, None, 422, "key"),
    ("POST", "/api/v1/workspaces/{w}/projects", {"name": "x", "key": "A"}, None, 422, "key"),
    (
        "POST",
        "/api/v1/workspaces/{w}/projects",
        {"name": "x", "key": "ABCDEFGHIJK"},
        None,
        422,
        "key",
    ),
    ("POST", "/api/v1/workspaces/{w}/projects", {"name": "x", "key": "A-B"}, None, 422, "key"),
    (
        "POST",
        "/api/v1/workspaces/{w}/projects",
        {"name": "x", "status": "done"},
        None,
        422,
        "status",
    ),
    (
        "POST",
        "/api/v1/workspaces/{w}/projects",
        {"name": "x", "start_date": "2026-13-01"},
        None,
        422,
        "start_date",
    ),
    (
        "POST",
        "/api/v1/workspaces/{w}/projects",
        {"name": "x", "start_date": 20260101},
        None,
        422,
        "start_date",
    ),
    (
        "POST",
        "/api/v1/workspaces/{w}/projects",
        {"name": "x", "start_date": "2026-02-01", "target_date": "2026-01-01"},
        None,
        422,
        "target_date",
    ),
    (
        "POST",
        "/api/v1/workspaces/{w}/projects",
        {"name": "x", "description": "d" * 10_001},
        None,
        422,
        "description",
    ),
    (
        "POST",
        "/api/v1/workspaces/{w}/projects",
        {"name": "x", "description": "nul\u0000"},
        None,
        422,
        "description",
    ),
    ("POST", "/api/v1/workspaces/{w}/projects", {"name": "x", "owner": "me"}, None, 422, "owner"),
    ("POST", "/api/v1/workspaces/{w}/projects", ["name"], None, 422, "body"),
    ("POST", "/api/v1/workspaces/not-an-id/projects", {"name": "x"}, None, 422, "workspace_id"),
    ("GET", "/api/v1/workspaces/{w}/projects", None, {"status": "gone"}, 422, "status"),
    ("GET", "/api/v1/workspaces/{w}/projects", None, {"sort": "owner"}, 422, "sort"),
    ("GET", "/api/v1/workspaces/{w}/projects", None, {"limit": "1000"}, 422, "limit"),
    ("GET", "/api/v1/projects/not-an-id", None, None, 422, "project_id"),
    ("GET", "/api/v1/projects/{p}", None, {"x": "1"}, 422, "x"),
    ("PATCH", "/api/v1/projects/{p}", {"key": "NEW"}, None, 422, "key"),
    ("PATCH", "/api/v1/projects/{p}", {"name": None}, None, 422, "name"),
    ("PATCH", "/api/v1/projects/{p}", {"status": None}, None, 422, "status"),
    ("PATCH", "/api/v1/projects/{p}", {"version": 0}, None, 422, "version"),
    ("PATCH", "/api/v1/projects/{p}", {"version": "1"}, None, 422, "version"),
    ("PATCH", "/api/v1/projects/{p}", {"name": "x", "version": 1.5}, None, 422, "version"),
    (
        "PATCH",
        "/api/v1/projects/{p}",
        {"target_date": "2026-01-01", "start_date": "2026-06-01"},
        None,
        422,
        "target_date",
    ),
    ("GET", "/api/v1/projects/{p}/export", None, {"format": "pdf"}, 422, "format"),
    ("GET", "/api/v1/projects/{p}/activity", None, {"limit": "0"}, 422, "limit"),
    ("GET", "/api/v1/projects/{p}/activity", None, {"cursor": "forged.cursor"}, 422, "cursor"),
    # --- phases
    ("POST", "/api/v1/projects/{p}/phases", {}, None, 422, "name"),
    ("POST", "/api/v1/projects/{p}/phases", {"name": "x" * 101}, None, 422, "name"),
    (
        "POST",
        "/api/v1/projects/{p}/phases",
        {"name": "x", "estimate_hours": -1},
        None,
        422,
        "estimate_hours",
    ),
    (
        "POST",
        "/api/v1/projects/{p}/phases",
        {"name": "x", "estimate_hours": "3"},
        None,
        422,
        "estimate_hours",
    ),
    (
        "POST",
        "/api/v1/projects/{p}/phases",
        {"name": "x", "estimate_hours": 1e9},
        None,
        422,
        "estimate_hours",
    ),
    ("POST", "/api/v1/projects/{p}/phases", {"name": "x", "position": -1}, None, 422, "position"),
    ("POST", "/api/v1/projects/{p}/phases", {"name": "x", "position": 1.5}, None, 422, "position"),
    ("POST", "/api/v1/projects/{p}/phases", {"name": "Phase 1: Foundation"}, None, 409, None),
    ("PATCH", "/api/v1/projects/{p}/phases/not-an-id", {"name": "x"}, None, 422, "phase_id"),
    ("PATCH", "/api/v1/projects/{p}/phases/" + HEX, {"name": "x"}, None, 404, None),
    ("PATCH", "/api/v1/projects/{p}/phases/{ph}", {"name": "Phase 2: Core API"}, None, 409, None),
    ("DELETE", "/api/v1/projects/{p}/phases/{ph}", None, None, 409, None),
    ("DELETE", "/api/v1/projects/{p}/phases/{ph}", None, {"move_to": HEX}, 422, "move_to"),
    ("DELETE", "/api/v1/projects/{p}/phases/{ph}", None, {"move_to": "x" * 101}, 422, "move_to"),
    # --- tasks
    ("POST", "/api/v1/projects/{p}/tasks", {}, None, 422, "title"),
    ("POST", "/api/v1/projects/{p}/tasks", {"title": "x" * 501}, None, 422, "title"),
    ("POST", "/api/v1/projects/{p}/tasks", {"title": ["x"]}, None, 422, "title"),
    ("POST", "/api/v1/projects/{p}/tasks", {"title": "line\nbreak"}, None, 422, "title"),
    ("POST", "/api/v1/projects/{p}/tasks", {"title": "x", "status": "doing"}, None, 422, "status"),
    ("POST", "/api/v1/projects/{p}/tasks", {"title": "x", "status": None}, None, 422, "status"),
    (
        "POST",
        "/api/v1/projects/{p}/tasks",
        {"title": "x", "complexity": "extreme"},
        None,
        422,
        "complexity",
    ),
    (
        "POST",
        "/api/v1/projects/{p}/tasks",
        {"title": "x", "estimate_hours": -0.5},
        None,
        422,
        "estimate_hours",
    ),
    (
        "POST",
        "/api/v1/projects/{p}/tasks",
        {"title": "x", "estimate_hours": 10_001},
        None,
        422,
        "estimate_hours",
    ),
    (
        "POST",
        "/api/v1/projects/{p}/tasks",
        {"title": "x", "estimate_hours": "3"},
        None,
        422,
        "estimate_hours",
    ),
    (
        "POST",
        "/api/v1/projects/{p}/tasks",
        {"title": "x", "estimate_hours": True},
        None,
        422,
        "estimate_hours",
    ),
    (
        "POST",
        "/api/v1/projects/{p}/tasks",
        '{"title": "x", "estimate_hours": NaN}',
        None,
        422,
        "estimate_hours",
    ),
    (
        "POST",
        "/api/v1/projects/{p}/tasks",
        '{"title": "x", "estimate_hours": 1e999}',
        None,
        422,
        "estimate_hours",
    ),
    (
        "POST",
        "/api/v1/projects/{p}/tasks",
        {"title": "x", "labels": ["l"] * 21},
        None,
        422,
        "labels",
    ),
    (
        "POST",
        "/api/v1/projects/{p}/tasks",
        {"title": "x", "labels": ["l" * 51]},
        None,
        422,
        "labels.0",
    ),
    ("POST", "/api/v1/projects/{p}/tasks", {"title": "x", "labels": [""]}, None, 422, "labels.0"),
    ("POST", "/api/v1/projects/{p}/tasks", {"title": "x", "labels": "ui"}, None, 422, "labels"),
    ("POST", "/api/v1/projects/{p}/tasks", {"title": "x", "labels": [7]}, None, 422, "labels.0"),
    (
        "POST",
        "/api/v1/projects/{p}/tasks",
        {"title": "x", "checklist": [{"text": "a"}] * 201},
        None,
        422,
        "checklist",
    ),
    (
        "POST",
        "/api/v1/projects/{p}/tasks",
        {"title": "x", "checklist": [{"text": "a"}] * 10_000},
        None,
        422,
        "checklist",
    ),
    (
        "POST",
        "/api/v1/projects/{p}/tasks",
        {"title": "x", "checklist": [{"text": ""}]},
        None,
        422,
        "checklist.0.text",
    ),
    (
        "POST",
        "/api/v1/projects/{p}/tasks",
        {"title": "x", "checklist": [{"text": "a", "done": "yes"}]},
        None,
        422,
        "checklist.0.done",
    ),
    (
        "POST",
        "/api/v1/projects/{p}/tasks",
        {"title": "x", "checklist": [{"txt": "a"}]},
        None,
        422,
        "checklist.0.txt",
    ),
    (
        "POST",
        "/api/v1/projects/{p}/tasks",
        {"title": "x", "checklist": ["a"]},
        None,
        422,
        "checklist.0",
    ),
    (
        "POST",
        "/api/v1/projects/{p}/tasks",
        {"title": "x", "due_date": "2026-02-30"},
        None,
        422,
        "due_date",
    ),
    (
        "POST",
        "/api/v1/projects/{p}/tasks",
        {"title": "x", "due_date": "tomorrow"},
        None,
        422,
        "due_date",
    ),
    (
        "POST",
        "/api/v1/projects/{p}/tasks",
        {"title": "x", "due_date": "2026-01-01T00:00:00Z"},
        None,
        422,
        "due_date",
    ),
    (
        "POST",
        "/api/v1/projects/{p}/tasks",
        {"title": "x", "due_date": 20260101},
        None,
        422,
        "due_date",
    ),
    (
        "POST",
        "/api/v1/projects/{p}/tasks",
        {"title": "x", "assignee_id": "nobody"},
        None,
        422,
        "assignee_id",
    ),
    (
        "POST",
        "/api/v1/projects/{p}/tasks",
        {"title": "x", "assignee_id": HEX},
        None,
        422,
        "assignee_id",
    ),
    (
        "POST",
        "/api/v1/projects/{p}/tasks",
        {"title": "x", "assignee_id": 5},
        None,
        422,
        "assignee_id",
    ),
    ("POST", "/api/v1/projects/{p}/tasks", {"title": "x", "phase": "Phase 9"}, None, 422, "phase"),
    ("POST", "/api/v1/projects/{p}/tasks", {"title": "x", "phase": ""}, None, 422, "phase"),
    ("POST", "/api/v1/projects/{p}/tasks", {"title": "x", "phase": 1}, None, 422, "phase"),
    (
        "POST",
        "/api/v1/projects/{p}/tasks",
        {"title": "x", "plan_ref": "a b"},
        None,
        422,
        "plan_ref",
    ),
    ("POST", "/api/v1/projects/{p}/tasks", {"title": "x", "plan_ref": "-x"}, None, 422, "plan_ref"),
    (
        "POST",
        "/api/v1/projects/{p}/tasks",
        {"title": "x", "plan_ref": "r" * 51},
        None,
        422,
        "plan_ref",
    ),
    (
        "POST",
        "/api/v1/projects/{p}/tasks",
        {"title": "x", "plan_ref": "T1.1"},
        None,
        422,
        "plan_ref",
    ),
    (
        "POST",
        "/api/v1/projects/{p}/tasks",
        {"title": "x", "description": "d" * 20_001},
        None,
        422,
        "description",
    ),
    (
        "POST",
        "/api/v1/projects/{p}/tasks",
        {"title": "x", "priority": "P1"},  # a field since issue 19: not one of its values
        None,
        422,
        "priority",
    ),
    (
        "POST",
        "/api/v1/projects/{p}/tasks",
        {"title": "x", "blocked_by": ["{t}"]},
        None,
        422,
        "blocked_by",
    ),
    ("POST", "/api/v1/projects/not-an-id/tasks", {"title": "x"}, None, 422, "project_id"),
    ("POST", "/api/v1/projects/" + HEX + "/tasks", {"title": "x"}, None, 404, None),
    ("GET", "/api/v1/tasks/not a key", None, None, 422, "task"),
    ("GET", "/api/v1/tasks/BAD-0", None, None, 422, "task"),
    ("GET", "/api/v1/tasks/BAD-1234567890", None, None, 422, "task"),
    ("GET", "/api/v1/tasks/{t}", None, {"fields": "title,password"}, 422, "fields"),
    ("PATCH", "/api/v1/tasks/{t}", {"title": None}, None, 422, "title"),
    ("PATCH", "/api/v1/tasks/{t}", {"status": "closed"}, None, 422, "status"),
    ("PATCH", "/api/v1/tasks/{t}", {"version": 0}, None, 422, "version"),
    ("PATCH", "/api/v1/tasks/{t}", {"key": "BAD-99"}, None, 422, "key"),
    ("PATCH", "/api/v1/tasks/{t}", {"estimate_hours": -1}, None, 422, "estimate_hours"),
    ("PATCH", "/api/v1/tasks/{t}", {"plan_ref": "T1.2"}, None, 422, "plan_ref"),
    ("PATCH", "/api/v1/tasks/{t}", {"title": "x"}, {"fields": "id"}, 422, "fields"),
    # --- bulk
    ("POST", "/api/v1/projects/{p}/tasks/bulk", {"tasks": []}, None, 422, "tasks"),
    ("POST", "/api/v1/projects/{p}/tasks/bulk", {"tasks": "x"}, None, 422, "tasks"),
    ("POST", "/api/v1/projects/{p}/tasks/bulk", {}, None, 422, "tasks"),
    (
        "POST",
        "/api/v1/projects/{p}/tasks/bulk",
        {"tasks": [{"title": "ok"}, {"title": 1}]},
        None,
        422,
        "tasks.1.title",
    ),
    (
        "POST",
        "/api/v1/projects/{p}/tasks/bulk-status",
        {"task_ids": ["zzz"], "status": "done"},
        None,
        422,
        "task_ids.0",
    ),
    (
        "POST",
        "/api/v1/projects/{p}/tasks/bulk-status",
        {"task_ids": ["{t}"], "status": "finished"},
        None,
        422,
        "status",
    ),
    (
        "POST",
        "/api/v1/projects/{p}/tasks/bulk-status",
        {"task_ids": ["{o}"], "status": "done"},
        None,
        422,
        "task_ids.0",
    ),
    (
        "POST",
        "/api/v1/projects/{p}/tasks/bulk-status",
        {"keys": ["{ok}"], "status": "done"},
        None,
        422,
        "keys.0",
    ),
    (
        "POST",
        "/api/v1/projects/{p}/tasks/bulk-status",
        {"task_ids": ["{t}"] * 501, "status": "done"},
        None,
        422,
        "task_ids",
    ),
    # --- dependencies
    ("POST", "/api/v1/tasks/{t}/dependencies", {}, None, 422, "blocked_by"),
    ("POST", "/api/v1/tasks/{t}/dependencies", {"blocked_by": ""}, None, 422, "blocked_by"),
    ("POST", "/api/v1/tasks/{t}/dependencies", {"blocked_by": 5}, None, 422, "blocked_by"),
    ("POST", "/api/v1/tasks/{t}/dependencies", {"blocked_by": "x" * 101}, None, 422, "blocked_by"),
    ("POST", "/api/v1/tasks/{t}/dependencies", {"blocked_by": "{t}"}, None, 422, "blocked_by"),
    ("POST", "/api/v1/tasks/{t}/dependencies", {"blocked_by": "{o}"}, None, 422, "blocked_by"),
    ("POST", "/api/v1/tasks/{t}/dependencies", {"blocked_by": "{ok}"}, None, 422, "blocked_by"),
    ("POST", "/api/v1/tasks/{t}/dependencies", {"blocked_by": HEX}, None, 422, "blocked_by"),
    ("POST", "/api/v1/tasks/{t}/dependencies", {"blocked_by": "{t2}"}, None, 409, None),
    ("POST", "/api/v1/tasks/{t2}/dependencies", {"blocked_by": "{t}"}, None, 409, None),
    ("DELETE", "/api/v1/tasks/{t}/dependencies/not-a-task", None, None, 422, "blocker"),
    ("DELETE", "/api/v1/tasks/{t}/dependencies/{o}", None, None, 422, "blocker"),
    ("DELETE", "/api/v1/tasks/{t}/dependencies/{t3}", None, None, 404, None),
    # --- comments
    ("POST", "/api/v1/tasks/{t}/comments", {}, None, 422, "body"),
    ("POST", "/api/v1/tasks/{t}/comments", {"body": ""}, None, 422, "body"),
    ("POST", "/api/v1/tasks/{t}/comments", {"body": " \n "}, None, 422, "body"),
    ("POST", "/api/v1/tasks/{t}/comments", {"body": "c" * 10_001}, None, 422, "body"),
    ("POST", "/api/v1/tasks/{t}/comments", {"body": "esc\u001b"}, None, 422, "body"),
    ("POST", "/api/v1/tasks/{t}/comments", {"body": {"text": "x"}}, None, 422, "body"),
    ("POST", "/api/v1/tasks/{t}/comments", {"body": "x", "author_id": HEX}, None, 422, "author_id"),
    ("GET", "/api/v1/tasks/{t}/comments", None, {"limit": "-1"}, 422, "limit"),
    ("PATCH", "/api/v1/comments/not-an-id", {"body": "x"}, None, 422, "comment_id"),
    ("PATCH", "/api/v1/comments/" + HEX, {"body": "x"}, None, 404, None),
    ("PATCH", "/api/v1/comments/{c}", {"body": "x", "version": "2"}, None, 422, "version"),
    ("PATCH", "/api/v1/comments/{c}", {}, None, 422, "body"),
]


def fill(value, world):
    if isinstance(value, str):
        for name in ("t2", "t3", "ok", "ph", "w", "p", "t", "o", "c"):
            value = value.replace("{" + name + "}", world[name])
        return value
    if isinstance(value, list):
        return [fill(v, world) for v in value]
    if isinstance(value, dict):
        return {k: fill(v, world) for k, v in value.items()}
    return value


@pytest.fixture(scope="module")
async def world(client):
    user = await new_user(client)
    workspace_id = await new_workspace(client, user)
    project = await import_plan(client, user, workspace_id, key="BAD")
    other = await import_plan(client, user, workspace_id, key="OTH")
    tasks = await by_ref(client, user, project["id"])
    others = await by_ref(client, user, other["id"])
    comment = await expect(
        await client.post(
            f"/api/v1/tasks/{tasks['T1.1']['id']}/comments",
            json={"body": "c"},
            headers=user.headers,
        ),
        201,
    )
    return {
        "user": user,
        "w": workspace_id,
        "p": project["id"],
        "ph": project["phases"][0]["id"],
        "t": tasks["T1.1"]["id"],
        "t2": tasks["T1.2"]["id"],  # blocked by T1.1
        "t3": tasks["T2.1"]["id"],  # not a blocker of T1.1
        "o": others["T1.1"]["id"],
        "ok": others["T1.1"]["key"],
        "c": comment["id"],
    }


async def snapshot(db, workspace_id):
    state = {}
    for name in ("projects", "tasks", "comments", "activity", "outbox"):
        docs = [doc async for doc in db[name].find({"workspace_id": workspace_id})]
        for doc in docs:  # the relay marks what it published on its own schedule
            doc.pop("published", None)
            doc.pop("published_at", None)
        state[name] = sorted(docs, key=lambda d: d["_id"])
    return state


def assert_unchanged(before, after):
    """Compare snapshots document by document, naming what changed."""
    for name, docs in before.items():
        old = {d["_id"]: d for d in docs}
        new = {d["_id"]: d for d in after[name]}
        if name == "outbox":
            # a relay that deletes what it published may drop some: none may be new
            assert set(new) <= set(old), (name, set(new) - set(old))
            old = {k: v for k, v in old.items() if k in new}
        else:
            assert set(new) == set(old), (name, set(new) ^ set(old))
        for doc_id, doc in old.items():
            changed = {k for k in set(doc) | set(new[doc_id]) if doc.get(k) != new[doc_id].get(k)}
            assert not changed, (
                name,
                doc_id,
                {k: (doc.get(k), new[doc_id].get(k)) for k in changed},
            )


@pytest.mark.parametrize(
    ("method", "path", "body", "query", "status", "field"),
    CASES,
    ids=[f"{c[0]} {c[1]} {str(c[2] if c[2] is not None else c[3])[:40]}" for c in CASES],
)
async def test_bad_input(client, db, world, method, path, body, query, status, field):
    headers = dict(world["user"].headers)
    kwargs = {"headers": headers, "params": fill(query, world)}
    if isinstance(body, str):
        kwargs["data"] = fill(body, world)
        headers["Content-Type"] = "application/json"
    elif body is not None:
        kwargs["json"] = fill(body, world)
    before = await snapshot(db, world["w"])
    response = await client.request(method, fill(path, world), **kwargs)
    problem = await expect_problem(response, status, field)
    assert problem["instance"] == fill(path, world).replace(" ", "%20") or problem["instance"]
    assert problem.get("request_id")
    assert_unchanged(before, await snapshot(db, world["w"]))


@pytest.mark.parametrize(
    ("content_type", "data", "status"),
    [
        ("text/plain", '{"title": "x"}', 415),
        ("application/x-www-form-urlencoded", "title=x", 415),
        ("application/json", '{"title": "x"', 400),
        ("application/json", "", 400),
        ("application/json", "\xff", 400),
    ],
)
async def test_bodies_that_are_not_json(client, db, world, content_type, data, status):
    before = await snapshot(db, world["w"])
    response = await client.post(
        f"/api/v1/projects/{world['p']}/tasks",
        data=data.encode("latin-1"),
        headers={**world["user"].headers, "Content-Type": content_type},
    )
    await expect_problem(response, status)
    assert_unchanged(before, await snapshot(db, world["w"]))


async def test_a_huge_body_is_413(client, db, world):
    before = await snapshot(db, world["w"])
    response = await client.post(
        f"/api/v1/projects/{world['p']}/tasks",
        json={"title": "x", "description": "d" * (5 * 1024 * 1024)},
        headers=world["user"].headers,
    )
    await expect_problem(response, 413)
    assert_unchanged(before, await snapshot(db, world["w"]))
