"""Issue 19: a task's scheduling fields (start_date, priority, milestone, typed links)
through create, PATCH, GET and lists, plan import (Markdown and JSON) and the exports."""

from __future__ import annotations

import csv
import io

import orjson
import pytest

from planboard.domain.plan import parse_plan
from planboard.domain.plan_json import plan_from_json
from tests.utils.api import (
    MARKDOWN,
    SAMPLE_PLAN,
    by_ref,
    expect,
    expect_problem,
    new_project,
    new_task,
    tasks_of,
    with_headers,
)

pytestmark = pytest.mark.integration

JSON = {"Content-Type": "application/json"}

SCHEDULED_PLAN = SAMPLE_PLAN.replace(
    "- **Dependencies**: T1.3, T2.1", "- **Dependencies**: T1.3 (SS+2d), T2.1 (FF-4h)"
)


def scheduled_plan() -> str:
    """The sample plan with every new bullet on T2.2 and a milestone T2.3."""
    plan = SCHEDULED_PLAN
    lines = plan.split("\n")
    at = next(i for i, line in enumerate(lines) if line.startswith("#### T2.2:"))
    lines[at + 1 : at + 1] = [
        "- **Priority**: High",
        "- **Start**: 2026-11-02",
        "- **Due**: 2026-11-06",
    ]
    launch = (
        "#### T2.3: Launch\n- [ ] **Status**: TODO\n- **Milestone**: yes\n"
        "- **Due**: 2026-11-09\n- **Dependencies**: T2.2\n\n---\n\n## Progress Tracking"
    )
    return "\n".join(lines).replace("---\n\n## Progress Tracking", launch, 1)


@pytest.fixture
async def project(client, owner, workspace_id):
    return await new_project(client, owner, workspace_id)


async def test_create_get_patch_and_list_carry_the_fields(client, owner, project):
    task = await new_task(
        client,
        owner,
        project["id"],
        start_date="2026-11-02",
        due_date="2026-11-06",
        priority="urgent",
    )
    assert (task["start_date"], task["due_date"], task["priority"], task["milestone"]) == (
        "2026-11-02",
        "2026-11-06",
        "urgent",
        False,
    )
    assert task["dependencies"] == []
    milestone = await new_task(
        client, owner, project["id"], milestone=True, due_date="2026-11-09", estimate_hours=0
    )
    assert milestone["milestone"] is True and milestone["priority"] is None
    patched = await expect(
        await client.patch(
            f"/api/v1/tasks/{task['id']}",
            json={"priority": None, "start_date": "2026-11-03"},
            headers=owner.headers,
        ),
        200,
    )
    assert (patched["priority"], patched["start_date"]) == (None, "2026-11-03")
    got = await expect(await client.get(f"/api/v1/tasks/{task['key']}", headers=owner.headers), 200)
    assert got["start_date"] == "2026-11-03" and got["version"] == patched["version"]
    listed = {t["id"]: t for t in await tasks_of(client, owner, project["id"])}
    assert listed[milestone["id"]]["milestone"] is True
    assert listed[task["id"]]["start_date"] == "2026-11-03"
    sparse = await tasks_of(client, owner, project["id"], fields="priority,milestone")
    assert all(set(t) == {"id", "priority", "milestone"} for t in sparse)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"start_date": "2026-11-07", "due_date": "2026-11-06"}, "start_date"),
        ({"milestone": True, "estimate_hours": 4}, "milestone"),
        ({"milestone": True, "start_date": "2026-11-01", "due_date": "2026-11-02"}, "milestone"),
        ({"priority": "P1"}, "priority"),
        ({"priority": "High"}, "priority"),
        ({"milestone": 1}, "milestone"),
        ({"milestone": None}, "milestone"),
        ({"start_date": "2026-11-31"}, "start_date"),
        ({"start_date": "20261101"}, "start_date"),
    ],
)
async def test_bad_fields_are_refused_naming_them(client, owner, project, body, field):
    response = await client.post(
        f"/api/v1/projects/{project['id']}/tasks",
        json={"title": "x", **body},
        headers=owner.headers,
    )
    await expect_problem(response, 422, field)
    assert await tasks_of(client, owner, project["id"]) == []


async def test_a_patch_is_checked_against_the_stored_fields(client, owner, project):
    task = await new_task(client, owner, project["id"], due_date="2026-11-06", estimate_hours=3)
    for body, field in (
        ({"start_date": "2026-11-09"}, "start_date"),
        ({"due_date": "2026-11-01", "start_date": "2026-11-02"}, "start_date"),
        ({"milestone": True}, "milestone"),
    ):
        response = await client.patch(
            f"/api/v1/tasks/{task['id']}", json=body, headers=owner.headers
        )
        await expect_problem(response, 422, field)
    await expect(
        await client.patch(
            f"/api/v1/tasks/{task['id']}",
            json={"milestone": True, "estimate_hours": None},
            headers=owner.headers,
        ),
        200,
    )
    # now a milestone: giving it an estimate is what is refused
    response = await client.patch(
        f"/api/v1/tasks/{task['id']}", json={"estimate_hours": 2}, headers=owner.headers
    )
    await expect_problem(response, 422, "estimate_hours")
    got = await expect(await client.get(f"/api/v1/tasks/{task['id']}", headers=owner.headers), 200)
    assert (got["milestone"], got["estimate_hours"], got["start_date"]) == (True, None, None)


async def _import(client, user, workspace_id, body: bytes, headers: dict[str, str]):
    return await client.post(
        f"/api/v1/workspaces/{workspace_id}/projects/import",
        data=body,
        headers=with_headers(user, **headers),
    )


async def _export(client, user, project_id: str, fmt: str):
    response = await client.get(
        f"/api/v1/projects/{project_id}/export", params={"format": fmt}, headers=user.headers
    )
    assert response.status == 200, await response.text()
    return await (response.json() if fmt == "json" else response.text())


async def test_a_markdown_plan_keeps_its_scheduling_fields(client, owner, workspace_id):
    plan = scheduled_plan()
    project = await expect(await _import(client, owner, workspace_id, plan.encode(), MARKDOWN), 201)
    tasks = await by_ref(client, owner, project["id"])
    loans, launch = tasks["T2.2"], tasks["T2.3"]
    assert (loans["priority"], loans["start_date"], loans["due_date"]) == (
        "high",
        "2026-11-02",
        "2026-11-06",
    )
    assert loans["dependencies"] == [
        {"task_id": tasks["T1.3"]["id"], "type": "SS", "lag": 2.0, "lag_unit": "d"},
        {"task_id": tasks["T2.1"]["id"], "type": "FF", "lag": -4.0, "lag_unit": "h"},
    ]
    assert loans["blocked_by"] == [tasks["T1.3"]["id"], tasks["T2.1"]["id"]]
    assert launch["milestone"] is True and launch["due_date"] == "2026-11-09"
    # both exports read back as the imported plan
    markdown = await _export(client, owner, project["id"], "markdown")
    assert parse_plan(markdown) == parse_plan(plan)
    assert "- **Dependencies**: T1.3 (SS+2d), T2.1 (FF-4h)" in markdown
    document = await _export(client, owner, project["id"], "json")
    assert plan_from_json(document) == parse_plan(plan)


async def test_the_json_export_imports_back_losslessly(client, owner, workspace_id):
    plan = scheduled_plan()
    first = await expect(await _import(client, owner, workspace_id, plan.encode(), MARKDOWN), 201)
    document = await _export(client, owner, first["id"], "json")
    second = await expect(
        await _import(client, owner, workspace_id, orjson.dumps(document), JSON), 201
    )
    assert second["id"] != first["id"] and second["name"] == first["name"]
    again = await _export(client, owner, second["id"], "json")
    assert plan_from_json(again) == plan_from_json(document) == parse_plan(plan)
    assert parse_plan(await _export(client, owner, second["id"], "markdown")) == parse_plan(plan)


async def test_a_bad_json_import_is_refused_and_creates_nothing(client, owner, workspace_id):
    plan = scheduled_plan()
    first = await expect(await _import(client, owner, workspace_id, plan.encode(), MARKDOWN), 201)
    document = await _export(client, owner, first["id"], "json")
    before = await expect(
        await client.get(f"/api/v1/workspaces/{workspace_id}/projects", headers=owner.headers),
        200,
    )
    bad = dict(document)
    bad["tasks"] = [dict(t) for t in document["tasks"]]
    bad["tasks"][3]["dependencies"] = [{"task_id": bad["tasks"][0]["id"], "type": "XX"}]
    body = await expect_problem(
        await _import(client, owner, workspace_id, orjson.dumps(bad), JSON), 422
    )
    assert body["errors"][0]["field"].startswith("tasks.3.dependencies")
    await expect_problem(await _import(client, owner, workspace_id, b"{not json", JSON), 400)
    await expect_problem(await _import(client, owner, workspace_id, b"[]", JSON), 422)
    response = await _import(client, owner, workspace_id, b"{}", {"Content-Type": "text/plain"})
    await expect_problem(response, 415)
    after = await expect(
        await client.get(f"/api/v1/workspaces/{workspace_id}/projects", headers=owner.headers),
        200,
    )
    assert len(after["items"]) == len(before["items"])


async def test_the_csv_export_has_the_new_columns(client, owner, workspace_id):
    plan = scheduled_plan()
    project = await expect(await _import(client, owner, workspace_id, plan.encode(), MARKDOWN), 201)
    text = await _export(client, owner, project["id"], "csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    header = text.split("\r\n", 1)[0].split(",")
    assert header[-4:] == ["start_date", "priority", "milestone", "dependencies"]
    assert header.index("updated_at") == len(header) - 5
    tasks = await by_ref(client, owner, project["id"])
    loans = next(r for r in rows if r["plan_ref"] == "T2.2")
    assert (loans["start_date"], loans["priority"], loans["milestone"]) == (
        "2026-11-02",
        "high",
        "false",
    )
    assert loans["dependencies"] == f"{tasks['T1.3']['key']} (SS+2d);{tasks['T2.1']['key']} (FF-4h)"
    launch = next(r for r in rows if r["plan_ref"] == "T2.3")
    assert launch["milestone"] == "true" and launch["dependencies"] == tasks["T2.2"]["key"]
