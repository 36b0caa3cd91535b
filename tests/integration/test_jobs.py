"""Exports and very large imports as jobs, run by the real jobs worker through Kafka."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from planboard.api.middleware import SECURITY_HEADERS
from tests.utils.api import new_project, new_task, new_user, new_workspace

pytestmark = pytest.mark.integration

SAMPLE = (Path(__file__).resolve().parents[1] / "fixtures" / "sample-plan.md").read_text()


async def wait_job(client, user, job_id: str, timeout: float = 90) -> dict:
    async with asyncio.timeout(timeout):
        while True:
            response = await client.get(f"/api/v1/jobs/{job_id}", headers=user.headers)
            body = await response.json()
            assert response.status == 200, body
            if body["status"] in ("succeeded", "failed"):
                return body
            await asyncio.sleep(0.2)


async def import_sample(client, user, workspace_id: str) -> dict:
    response = await client.post(
        f"/api/v1/workspaces/{workspace_id}/projects/import",
        data=SAMPLE.encode(),
        headers={**user.headers, "Content-Type": "text/markdown"},
    )
    assert response.status == 201, await response.text()
    return await response.json()


async def test_export_job_produces_the_same_document(client) -> None:
    user = await new_user(client)
    workspace_id = await new_workspace(client, user)
    project = await import_sample(client, user, workspace_id)
    for fmt, options in (
        ("markdown", {}),
        ("csv", {}),
        ("json", {}),
        ("mermaid", {}),
        ("mermaid", {"diagram": "graph"}),
    ):
        queued = await client.post(
            f"/api/v1/projects/{project['id']}/exports",
            json={"format": fmt, **options},
            headers=user.headers,
        )
        body = await queued.json()
        assert queued.status == 202, body
        assert queued.headers["Location"] == f"/api/v1/jobs/{body['job_id']}"
        job = await wait_job(client, user, body["job_id"])
        assert job["status"] == "succeeded", job
        assert job["progress"] == 100 and job["error"] is None
        download = await client.get(
            job["result"]["download_url"], headers={**user.headers, "X-Request-ID": f"dl-{fmt}"}
        )
        assert download.status == 200
        # streamed: prepared inside the handler, yet with the id and the security headers
        assert download.headers["X-Request-ID"] == f"dl-{fmt}"
        for name, value in SECURITY_HEADERS.items():
            assert download.headers[name] == value, name
        direct = await client.get(
            f"/api/v1/projects/{project['id']}/export",
            params={"format": fmt, **options},
            headers=user.headers,
        )
        assert download.headers["Content-Type"] == direct.headers["Content-Type"]
        if fmt == "json":
            assert (await download.json())["tasks"] == (await direct.json())["tasks"]
        else:
            assert await download.read() == await direct.read()


async def test_very_large_plan_import_is_a_job(client) -> None:
    user = await new_user(client)
    workspace_id = await new_workspace(client, user)
    tasks = "\n".join(
        f"#### T1.{n}: Task number {n}\n- [ ] **Status**: TODO\n- **Estimated**: 1 hours\n"
        f"- **Dependencies**: {'None' if n == 1 else f'T1.{n - 1}'}\n"
        for n in range(1, 602)
    )
    plan = (
        "# Big - Backend API Project Plan\n\n## Overview\n\n**Project Name**: Big\n\n"
        "## Tasks & Implementation Plan\n\n### Phase 1: Everything (Est: 600 hours)\n\n" + tasks
    )
    response = await client.post(
        f"/api/v1/workspaces/{workspace_id}/projects/import",
        data=plan.encode(),
        headers={**user.headers, "Content-Type": "text/markdown"},
    )
    body = await response.json()
    assert response.status == 202, body
    job = await wait_job(client, user, body["job_id"], timeout=180)
    assert job["status"] == "succeeded", job
    assert job["result"]["tasks"] == 601
    progress = await client.get(
        f"/api/v1/projects/{job['result']['project_id']}/progress", headers=user.headers
    )
    assert (await progress.json())["total"] == 601


async def test_jobs_are_private_to_their_workspace_and_validated(client) -> None:
    owner, stranger = await new_user(client), await new_user(client)
    workspace_id = await new_workspace(client, owner)
    project = await import_sample(client, owner, workspace_id)
    queued = await client.post(
        f"/api/v1/projects/{project['id']}/exports",
        json={"format": "markdown"},
        headers=owner.headers,
    )
    job_id = (await queued.json())["job_id"]
    assert (await client.get(f"/api/v1/jobs/{job_id}", headers=stranger.headers)).status == 404
    assert (
        await client.get(f"/api/v1/jobs/{job_id}/result", headers=stranger.headers)
    ).status == 404
    assert (await client.get("/api/v1/jobs/nope", headers=owner.headers)).status == 404
    bad = await client.post(
        f"/api/v1/projects/{project['id']}/exports", json={"format": "pdf"}, headers=owner.headers
    )
    assert bad.status == 422
    for body in ({"format": "csv", "diagram": "gantt"}, {"format": "mermaid", "diagram": "pie"}):
        bad = await client.post(
            f"/api/v1/projects/{project['id']}/exports", json=body, headers=owner.headers
        )
        problem = await bad.json()
        assert bad.status == 422, problem
        assert [e["field"] for e in problem["errors"]] == ["diagram"]
    # A gantt chart of a project with nothing to draw (no estimate, milestone or due
    # date): the job fails and says why.
    empty = await new_project(client, owner, workspace_id, key="BLANK")
    await new_task(client, owner, empty["id"], title="Someday")
    queued = await client.post(
        f"/api/v1/projects/{empty['id']}/exports",
        json={"format": "mermaid", "diagram": "gantt"},
        headers=owner.headers,
    )
    job = await wait_job(client, owner, (await queued.json())["job_id"])
    assert job["status"] == "failed"
    assert "has an estimate, a due date or the milestone flag" in job["error"]
    other = await client.post(
        f"/api/v1/projects/{project['id']}/exports",
        json={"format": "csv"},
        headers=stranger.headers,
    )
    assert other.status == 404
