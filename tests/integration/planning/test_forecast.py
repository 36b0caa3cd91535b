"""Issue 19: GET /projects/{id}/forecast (Monte Carlo over the stored schedule), in the
request for small projects and by the jobs worker for big ones."""

from __future__ import annotations

import asyncio

import pytest

from planboard.services import scheduling
from tests.integration.planning.test_schedule import network
from tests.utils.api import (
    add_member,
    expect,
    expect_problem,
    new_user,
)

pytestmark = pytest.mark.integration


async def test_a_small_project_is_forecast_in_the_request(client, db, owner, workspace_id):
    project, a, b, c, d = await network(client, owner, workspace_id, "automatic")
    url = f"/api/v1/projects/{project['id']}/forecast"
    body = await expect(
        await client.get(url, params={"runs": "500", "seed": "7"}, headers=owner.headers), 200
    )
    assert (body["runs"], body["seed"], body["mode"]) == (500, 7, "automatic")
    p = body["project"]
    assert p["p50_hours"] <= p["p85_hours"] <= p["p95_hours"]
    assert p["p50"] <= p["p85"] <= p["p95"]
    # the median run takes about the estimates: near the CPM finish (24 working hours)
    assert 12 <= p["p50_hours"] <= 48
    index = {x["key"]: x["index"] for x in body["criticality"]}
    assert set(index) == {a["key"], b["key"], c["key"], d["key"]}
    # A precedes everything and C (4 h, SS+4h) rarely decides the finish
    assert index[a["key"]] == 1.0 and index[c["key"]] < index[b["key"]]
    # the same seed gives the same forecast; another seed another one
    again = await expect(
        await client.get(url, params={"runs": "500", "seed": "7"}, headers=owner.headers), 200
    )
    assert again == body
    viewer = await new_user(client)
    await add_member(db, workspace_id, viewer, "viewer")
    await expect(await client.get(url, headers=viewer.headers), 200)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"runs": "99"}, "runs"),
        ({"runs": "10001"}, "runs"),
        ({"runs": "1.5"}, "runs"),
        ({"runs": "many"}, "runs"),
        ({"seed": "-1"}, "seed"),
        ({"seed": str(2**32)}, "seed"),
        ({"model": "x"}, "model"),
    ],
)
async def test_bad_forecast_queries_are_refused(client, owner, workspace_id, params, field):
    project, *_ = await network(client, owner, workspace_id, "manual")
    url = f"/api/v1/projects/{project['id']}/forecast"
    await expect_problem(await client.get(url, params=params, headers=owner.headers), 422, field)
    stranger = await new_user(client)
    await expect_problem(await client.get(url, headers=stranger.headers), 404)


async def test_a_big_project_is_forecast_by_a_job(client, db, owner, workspace_id):
    project, *_ = await network(client, owner, workspace_id, "automatic")
    # as if it held more tasks than a request forecasts (the count is what decides)
    await db.projects.update_one(
        {"_id": project["id"]}, {"$set": {"task_count": scheduling.FORECAST_SYNC_TASKS + 1}}
    )
    response = await client.get(
        f"/api/v1/projects/{project['id']}/forecast",
        params={"runs": "200", "seed": "3"},
        headers=owner.headers,
    )
    queued = await expect(response, 202)
    assert response.headers["Location"] == f"/api/v1/jobs/{queued['job_id']}"
    for _ in range(900):
        job = await expect(
            await client.get(f"/api/v1/jobs/{queued['job_id']}", headers=owner.headers), 200
        )
        if job["status"] in ("succeeded", "failed"):
            break
        await asyncio.sleep(0.1)
    assert job["status"] == "succeeded", job
    assert job["kind"] == "forecast"
    assert (job["result"]["runs"], job["result"]["seed"]) == (200, 3)
    assert len(job["result"]["criticality"]) == 4
    # no done task anywhere in the workspace: the default models, said so
    assert job["result"]["calibration"] == {"calibrated": False, "source": "default", "samples": 0}
