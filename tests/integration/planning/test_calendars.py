"""Issue 19: working calendars on workspaces and projects, and the scheduling mode."""

from __future__ import annotations

import pytest

from planboard.domain.plan_json import plan_from_json
from tests.utils.api import (
    add_member,
    expect,
    expect_problem,
    new_project,
    new_user,
)

pytestmark = pytest.mark.integration

BERLIN = {
    "weekdays": [0, 1, 2, 3],
    "hours_per_day": 7.5,
    "holidays": ["2026-12-25", "2026-12-24"],
    "timezone": "Europe/Berlin",
}


async def test_a_project_calendar_and_mode_are_set_shown_and_cleared(client, owner, workspace_id):
    project = await new_project(client, owner, workspace_id)
    assert (project["calendar"], project["scheduling_mode"]) == (None, "manual")
    url = f"/api/v1/projects/{project['id']}"
    patched = await expect(
        await client.patch(
            url,
            json={"calendar": BERLIN, "scheduling_mode": "automatic"},
            headers=owner.headers,
        ),
        200,
    )
    assert patched["calendar"] == {**BERLIN, "holidays": ["2026-12-24", "2026-12-25"]}
    assert patched["scheduling_mode"] == "automatic"
    got = await expect(await client.get(url, headers=owner.headers), 200)
    assert got["calendar"] == patched["calendar"] and got["version"] == patched["version"]
    # the JSON export (which carries the project) still imports
    export = await client.get(f"{url}/export", params={"format": "json"}, headers=owner.headers)
    assert plan_from_json(await export.json()).name == project["name"]
    cleared = await expect(
        await client.patch(url, json={"calendar": None}, headers=owner.headers), 200
    )
    assert cleared["calendar"] is None and cleared["scheduling_mode"] == "automatic"
    created = await new_project(
        client, owner, workspace_id, calendar={"timezone": "Asia/Kolkata"}, scheduling_mode="manual"
    )
    assert created["calendar"] == {
        "weekdays": [0, 1, 2, 3, 4],
        "hours_per_day": 8.0,
        "holidays": [],
        "timezone": "Asia/Kolkata",
    }


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"calendar": {"timezone": "Mars/Olympus"}}, "calendar.timezone"),
        ({"calendar": {"weekdays": []}}, "calendar.weekdays"),
        ({"calendar": {"weekdays": [7]}}, "calendar.weekdays"),
        ({"calendar": {"weekdays": ["mon"]}}, "calendar.weekdays"),
        ({"calendar": {"hours_per_day": 0}}, "calendar.hours_per_day"),
        ({"calendar": {"hours_per_day": 25}}, "calendar.hours_per_day"),
        ({"calendar": {"hours_per_day": "8"}}, "calendar.hours_per_day"),
        ({"calendar": {"holidays": ["2026-02-30"]}}, "calendar.holidays"),
        ({"calendar": {"holidays": ["2026-01-01"] * 1001}}, "calendar.holidays"),
        ({"calendar": {"day_start": "25:00"}}, "calendar.day_start"),
        ({"calendar": {"day_start": "20:00", "hours_per_day": 8}}, "calendar.day_start"),
        ({"calendar": {"lunch": "12:00"}}, "calendar.lunch"),
        ({"calendar": "UTC"}, "calendar"),
        ({"scheduling_mode": "auto"}, "scheduling_mode"),
        ({"scheduling_mode": None}, "scheduling_mode"),
    ],
)
async def test_bad_calendars_are_refused_naming_the_field(client, owner, workspace_id, body, field):
    project = await new_project(client, owner, workspace_id)
    url = f"/api/v1/projects/{project['id']}"
    await expect_problem(await client.patch(url, json=body, headers=owner.headers), 422, field)
    got = await expect(await client.get(url, headers=owner.headers), 200)
    assert got["version"] == project["version"] and got["calendar"] is None


async def test_a_workspace_calendar_is_set_by_admins(client, db, owner, workspace_id):
    url = f"/api/v1/workspaces/{workspace_id}"
    body = await expect(
        await client.patch(url, json={"calendar": BERLIN}, headers=owner.headers), 200
    )
    assert body["calendar"]["timezone"] == "Europe/Berlin" and body["name"] == "Acme"
    got = await expect(await client.get(url, headers=owner.headers), 200)
    assert got["calendar"] == body["calendar"]
    await expect_problem(
        await client.patch(url, json={"calendar": {"timezone": "Nowhere"}}, headers=owner.headers),
        422,
        "calendar.timezone",
    )
    await expect_problem(await client.patch(url, json={}, headers=owner.headers), 422, "name")
    member = await new_user(client)
    await add_member(db, workspace_id, member, "member")
    await expect_problem(
        await client.patch(url, json={"calendar": None}, headers=member.headers), 403
    )
    stranger = await new_user(client)
    await expect_problem(
        await client.patch(url, json={"calendar": None}, headers=stranger.headers), 404
    )
    renamed = await expect(
        await client.patch(url, json={"name": "Acme GmbH"}, headers=owner.headers), 200
    )
    assert renamed["calendar"]["timezone"] == "Europe/Berlin"
    cleared = await expect(
        await client.patch(url, json={"calendar": None}, headers=owner.headers), 200
    )
    assert cleared["calendar"] is None
