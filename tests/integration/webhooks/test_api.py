"""Webhook management API: contract, validation, SSRF refusal, roles and isolation."""

from __future__ import annotations

import pytest

from tests.integration.webhooks.conftest import add_member
from tests.utils.api import new_user, new_workspace

pytestmark = pytest.mark.integration

PUBLIC_URL = "https://93.184.215.14/planboard/hook?team=a"


def hooks(workspace_id: str) -> str:
    return f"/api/v1/workspaces/{workspace_id}/webhooks"


async def create(client, user, workspace_id, **body):
    payload = {"url": PUBLIC_URL, "events": ["task.created"], **body}
    return await client.post(hooks(workspace_id), json=payload, headers=user.headers)


async def test_create_returns_the_secret_once_and_never_again(client, db) -> None:
    owner = await new_user(client)
    workspace_id = await new_workspace(client, owner)
    response = await create(client, owner, workspace_id, events=["task.created", "comment.*"])
    body = await response.json()
    assert response.status == 201, body
    assert set(body) >= {"id", "url", "events", "secret", "active", "version"}
    assert body["url"] == PUBLIC_URL
    assert body["events"] == ["task.created", "comment.*"]
    assert body["secret"].startswith("pbwhsec_") and len(body["secret"]) > 40
    assert body["active"] is True and body["workspace_id"] == workspace_id
    assert response.headers["Location"] == f"{hooks(workspace_id)}/{body['id']}"

    got = await client.get(f"{hooks(workspace_id)}/{body['id']}", headers=owner.headers)
    shown = await got.json()
    assert got.status == 200 and "secret" not in shown and shown["id"] == body["id"]
    assert (
        await client.get(
            f"{hooks(workspace_id)}/{body['id']}",
            headers={**owner.headers, "If-None-Match": got.headers["ETag"]},
        )
    ).status == 304
    listed = await (await client.get(hooks(workspace_id), headers=owner.headers)).json()
    assert [w["id"] for w in listed["items"]] == [body["id"]]
    assert all("secret" not in w for w in listed["items"])

    chosen = await create(client, owner, workspace_id, secret="s" * 16, events=["*"])
    assert (await chosen.json())["secret"] == "s" * 16
    events = [e async for e in db.outbox.find({"type": "webhook.created"})]
    mine = [e for e in events if e["data"]["webhook_id"] == body["id"]]
    assert len(mine) == 1 and mine[0]["workspace_id"] == workspace_id
    assert "url" not in mine[0]["data"] and "secret" not in mine[0]["data"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "ftp://hooks.example.com/x"}, "url"),
        ({"url": "http://user:pw@hooks.example.com/x"}, "url"),
        ({"url": "https://hooks.example.com/" + "a" * 10_000}, "url"),
        ({"url": "https://hooks.example.com/x#frag"}, "url"),
        ({"url": "https:///nohost"}, "url"),
        ({"url": "not a url"}, "url"),
        ({"url": "javascript:alert(1)"}, "url"),
        ({"url": "http://2130706433/"}, "url"),
        ({"url": "http://127.1/"}, "url"),
        ({"events": ["task.exploded"]}, "events.0"),
        ({"events": ["task.created", "nothing"]}, "events.1"),
        ({"events": ["mail.queued"]}, "events.0"),
        ({"events": ["bogus.*"]}, "events.0"),
        ({"events": []}, "events"),
        ({"events": "task.created"}, "events"),
        ({"secret": "short"}, "secret"),
        ({"secret": "x" * 257}, "secret"),
        ({"unknown": 1}, "unknown"),
    ],
)
async def test_invalid_bodies_are_422_naming_the_field(client, db, body, field) -> None:
    owner = await new_user(client)
    workspace_id = await new_workspace(client, owner)
    response = await create(client, owner, workspace_id, **body)
    problem = await response.json()
    assert response.status == 422, problem
    assert response.content_type == "application/problem+json"
    assert field in [e["field"] for e in problem["errors"]], problem
    assert await db.webhooks.count_documents({"workspace_id": workspace_id}) == 0


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://api.localhost/hook",
        "http://10.1.2.3/hook",
        "http://172.16.0.1/hook",
        "http://192.168.1.10/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.7/hook",
        "http://0.0.0.0/hook",
        "http://224.0.0.1/hook",
        "http://[::1]/hook",
        "http://[fd12:3456::1]/hook",
        "http://[fe80::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://[::ffff:a9fe:a9fe]/hook",
        "http://[64:ff9b::a00:1]/hook",
    ],
)
async def test_private_targets_are_refused_with_the_guard_on(client, db, url) -> None:
    owner = await new_user(client)
    workspace_id = await new_workspace(client, owner)
    response = await create(client, owner, workspace_id, url=url)
    problem = await response.json()
    assert response.status == 422, problem
    assert problem["errors"][0]["field"] == "url"
    assert "refused" in problem["errors"][0]["message"]
    assert await db.webhooks.count_documents({"workspace_id": workspace_id}) == 0


async def test_loopback_is_allowed_when_private_targets_are(private_client) -> None:
    owner = await new_user(private_client)
    workspace_id = await new_workspace(private_client, owner)
    response = await create(private_client, owner, workspace_id, url="http://127.0.0.1:9/hook")
    assert response.status == 201, await response.text()
    # unspecified and multicast stay refused even then
    for url in ("http://0.0.0.0:9/hook", "http://[ff02::1]/hook"):
        refused = await create(private_client, owner, workspace_id, url=url)
        assert refused.status == 422


async def test_update_rotate_pause_and_resume(client) -> None:
    owner = await new_user(client)
    workspace_id = await new_workspace(client, owner)
    created = await (await create(client, owner, workspace_id)).json()
    path = f"{hooks(workspace_id)}/{created['id']}"

    changed = await client.patch(
        path,
        json={"events": ["task.*", "project.created"], "url": "https://93.184.215.14/v2"},
        headers=owner.headers,
    )
    body = await changed.json()
    assert changed.status == 200, body
    assert body["events"] == ["task.*", "project.created"] and body["url"].endswith("/v2")
    assert body["version"] == 2 and "secret" not in body

    rotated = await client.patch(path, json={"rotate_secret": True}, headers=owner.headers)
    secret = (await rotated.json())["secret"]
    assert secret.startswith("pbwhsec_") and secret != created["secret"]

    paused = await (await client.patch(path, json={"active": False}, headers=owner.headers)).json()
    assert paused["active"] is False
    resumed = await (await client.patch(path, json={"active": True}, headers=owner.headers)).json()
    assert resumed["active"] is True and resumed["consecutive_failures"] == 0

    stale = await client.patch(path, json={"active": False, "version": 1}, headers=owner.headers)
    assert stale.status == 412
    etag = (await client.get(path, headers=owner.headers)).headers["ETag"]
    fresh = await client.patch(
        path, json={"active": False}, headers={**owner.headers, "If-Match": etag}
    )
    assert fresh.status == 200

    for bad, field in (
        ({}, "body"),
        ({"active": "yes"}, "active"),
        ({"url": "ftp://x.example.com/"}, "url"),
        ({"url": "http://10.0.0.1/"}, "url"),
        ({"secret": "abc"}, "secret"),
        ({"secret": "y" * 20, "rotate_secret": True}, "secret"),
        ({"events": ["task.nope"]}, "events.0"),
    ):
        refused = await client.patch(path, json=bad, headers=owner.headers)
        problem = await refused.json()
        assert refused.status == 422, (bad, problem)
        assert field in [e["field"] for e in problem["errors"]], (bad, problem)


async def test_delete_removes_it_and_emits_an_event(client, db) -> None:
    owner = await new_user(client)
    workspace_id = await new_workspace(client, owner)
    created = await (await create(client, owner, workspace_id)).json()
    path = f"{hooks(workspace_id)}/{created['id']}"
    assert (await client.delete(path, headers=owner.headers)).status == 204
    assert (await client.get(path, headers=owner.headers)).status == 404
    assert (await client.delete(path, headers=owner.headers)).status == 404
    events = [e async for e in db.outbox.find({"type": "webhook.deleted"})]
    assert [e for e in events if e["data"]["webhook_id"] == created["id"]]


async def test_admins_only_and_other_workspaces_are_404(client, db) -> None:
    owner, admin, member, viewer, stranger = [await new_user(client) for _ in range(5)]
    workspace_id = await new_workspace(client, owner)
    for user, role in ((admin, "admin"), (member, "member"), (viewer, "viewer")):
        await add_member(db, workspace_id, user.id, role)
    made = await create(client, admin, workspace_id)
    assert made.status == 201
    webhook_id = (await made.json())["id"]
    path = f"{hooks(workspace_id)}/{webhook_id}"

    for user in (member, viewer):
        assert (await create(client, user, workspace_id)).status == 403
        assert (await client.get(hooks(workspace_id), headers=user.headers)).status == 403
        assert (await client.get(path, headers=user.headers)).status == 403
        assert (await client.get(f"{path}/deliveries", headers=user.headers)).status == 403
        assert (await client.post(f"{path}/test", headers=user.headers)).status == 403
    for call in (
        client.get(hooks(workspace_id), headers=stranger.headers),
        client.get(path, headers=stranger.headers),
        client.patch(path, json={"active": False}, headers=stranger.headers),
        client.delete(path, headers=stranger.headers),
        client.post(f"{path}/test", headers=stranger.headers),
        client.get(f"{path}/deliveries", headers=stranger.headers),
        create(client, stranger, workspace_id),
    ):
        response = await call
        assert response.status == 404, await response.text()

    # a webhook id used under another workspace (where the caller is owner) is a 404 too
    other = await new_workspace(client, stranger)
    moved = f"{hooks(other)}/{webhook_id}"
    assert (await client.get(moved, headers=stranger.headers)).status == 404
    assert (await client.delete(moved, headers=stranger.headers)).status == 404
    assert (await client.get(f"{moved}/deliveries", headers=stranger.headers)).status == 404
    assert (await client.get(path, headers=admin.headers)).status == 200
    assert (await client.get(hooks(workspace_id))).status == 401


async def test_scoped_tokens_need_the_webhooks_scopes(client) -> None:
    owner = await new_user(client)
    workspace_id = await new_workspace(client, owner)

    async def token(scopes):
        made = await client.post(
            "/api/v1/tokens", json={"name": "ci", "scopes": scopes}, headers=owner.headers
        )
        assert made.status == 201, await made.text()
        return {"Authorization": f"Bearer {(await made.json())['token']}"}

    reader = await token(["webhooks:read"])
    writer = await token(["webhooks:write"])
    other = await token(["tasks:write"])
    payload = {"url": PUBLIC_URL, "events": ["*"]}
    assert (await client.post(hooks(workspace_id), json=payload, headers=reader)).status == 403
    assert (await client.post(hooks(workspace_id), json=payload, headers=writer)).status == 201
    assert (await client.get(hooks(workspace_id), headers=reader)).status == 200
    assert (await client.get(hooks(workspace_id), headers=other)).status == 403


async def test_list_paginates_and_the_cursor_is_bound_to_the_workspace(client) -> None:
    owner = await new_user(client)
    workspace_id = await new_workspace(client, owner)
    ids = [(await (await create(client, owner, workspace_id)).json())["id"] for _ in range(5)]
    seen, cursor = [], None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = await (
            await client.get(hooks(workspace_id), params=params, headers=owner.headers)
        ).json()
        seen += [w["id"] for w in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == ids
    first = await (
        await client.get(hooks(workspace_id), params={"limit": "2"}, headers=owner.headers)
    ).json()
    other = await new_workspace(client, owner, "Other")
    replay = await client.get(
        hooks(other), params={"cursor": first["next_cursor"]}, headers=owner.headers
    )
    assert replay.status == 422
    assert (
        await client.get(hooks(workspace_id), params={"limit": "500"}, headers=owner.headers)
    ).status == 422


async def test_a_workspace_holds_a_bounded_number_of_webhooks(client) -> None:
    owner = await new_user(client)
    workspace_id = await new_workspace(client, owner)
    from planboard.services.webhooks import MAX_WEBHOOKS_PER_WORKSPACE

    for _ in range(MAX_WEBHOOKS_PER_WORKSPACE):
        assert (await create(client, owner, workspace_id)).status == 201
    refused = await create(client, owner, workspace_id)
    assert refused.status == 409


async def test_the_worker_registry_runs_the_webhooks_group_with_its_loop(settings, db, redis):
    from planboard.workers.registry import GROUPS, WorkerDeps

    group = GROUPS["webhooks"](WorkerDeps(settings, db, redis))
    assert group.name == "webhooks"
    families = {"workspace", "project", "task", "comment", "attachment", "webhook", "job"}
    assert set(group.families) == families
    worker = group.handle.__self__  # the consumer handler is bound to the worker
    loop_task = worker._background
    assert loop_task is not None and not loop_task.done()  # the delivery loop is running
    worker.stop()
    await loop_task
