"""The live JSON export reads back (domain/plan_json.py) as the plan the Markdown export
holds, and the plan format's scheduling bullets are checked on import."""

from __future__ import annotations

import pytest

from planboard.domain.plan import parse_plan
from planboard.domain.plan_json import plan_from_json
from tests.utils.api import (
    MARKDOWN,
    SAMPLE_PLAN,
    expect,
    expect_problem,
    import_plan,
    new_project,
    new_task,
    with_headers,
)

pytestmark = pytest.mark.integration


async def exported(client, user, project_id: str, fmt: str):
    response = await client.get(
        f"/api/v1/projects/{project_id}/export", params={"format": fmt}, headers=user.headers
    )
    assert response.status == 200, await response.text()
    return await (response.json() if fmt == "json" else response.text())


async def test_the_json_export_of_an_imported_plan_reads_back_as_that_plan(
    client, owner, workspace_id
):
    project = await import_plan(client, owner, workspace_id)
    body = await exported(client, owner, project["id"], "json")
    assert plan_from_json(body) == parse_plan(SAMPLE_PLAN)


async def test_json_and_markdown_exports_hold_the_same_plan(client, owner, workspace_id):
    """A project built through the API: a task without a plan_ref (its key is its ref), one
    without a phase (the ``Unphased`` phase), dependencies, a checklist, a due date."""
    project = await new_project(client, owner, workspace_id, name="By hand", key="HAND")
    await expect(
        await client.post(
            f"/api/v1/projects/{project['id']}/phases", json={"name": "Only"}, headers=owner.headers
        ),
        201,
    )
    a = await new_task(client, owner, project["id"], title="Ref", plan_ref="X1", phase="Only")
    b = await new_task(
        client,
        owner,
        project["id"],
        title="No ref",
        phase="Only",
        estimate_hours=2.5,
        checklist=[{"text": "one", "done": True}],
        due_date="2026-11-30",
    )
    c = await new_task(client, owner, project["id"], title="Unphased", status="done")
    for task, blocker in ((b, a), (c, b)):
        await expect(
            await client.post(
                f"/api/v1/tasks/{task['id']}/dependencies",
                json={"blocked_by": blocker["id"]},
                headers=owner.headers,
            ),
            201,
        )
    from_json = plan_from_json(await exported(client, owner, project["id"], "json"))
    from_markdown = parse_plan(await exported(client, owner, project["id"], "markdown"))
    assert [t.ref for t in from_json.tasks()] == ["X1", "HAND-2", "HAND-3"]
    assert [p.name for p in from_json.phases] == ["Only", "Unphased"]
    assert from_json.tasks()[2].dependencies == ("HAND-2",)
    # the due date is in both exports
    assert from_json.tasks()[1].due == from_markdown.tasks()[1].due
    assert from_json.tasks()[1].due.isoformat() == "2026-11-30"
    assert [
        (t.ref, t.title, t.status, t.estimate_hours, t.links, t.checklist, t.due)
        for t in from_json.tasks()
    ] == [
        (t.ref, t.title, t.status, t.estimate_hours, t.links, t.checklist, t.due)
        for t in from_markdown.tasks()
    ]


async def test_a_bad_scheduling_bullet_is_refused_with_its_line(client, owner, workspace_id):
    plan = SAMPLE_PLAN.replace(
        "- **Dependencies**: T1.3, T2.1", "- **Dependencies**: T1.3 (SS+2w), T2.1"
    )
    response = await client.post(
        f"/api/v1/workspaces/{workspace_id}/projects/import",
        data=plan.encode(),
        headers=with_headers(owner, **MARKDOWN),
    )
    body = await expect_problem(response, 422)
    assert body["line"] == plan.split("\n").index("- **Dependencies**: T1.3 (SS+2w), T2.1") + 1
    assert "task T2.2: unknown lag unit 'w'" in body["detail"]
