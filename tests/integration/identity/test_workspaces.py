"""Workspaces, roles, invitations and tenant isolation on the real stack."""

from __future__ import annotations

import pytest

from tests.utils.api import new_user, new_workspace, token_in, wait_for_mail

pytestmark = pytest.mark.integration


async def invite_and_accept(client, mail_url, admin, workspace_id, member, role):
    response = await client.post(
        f"/api/v1/workspaces/{workspace_id}/invitations",
        json={"email": member.email, "role": role},
        headers=admin.headers,
    )
    body = await response.json()
    assert response.status == 201, body
    mail = await wait_for_mail(mail_url, member.email, "You are invited")
    token = token_in(mail["text"], "pbinv")
    accepted = await client.post(
        "/api/v1/invitations/accept", json={"token": token}, headers=member.headers
    )
    assert accepted.status == 200, await accepted.text()
    return body, token


async def test_create_and_read_workspace_contract(client) -> None:
    owner = await new_user(client)
    response = await client.post(
        "/api/v1/workspaces", json={"name": "  Rocket  "}, headers=owner.headers
    )
    body = await response.json()
    assert response.status == 201
    assert body["name"] == "Rocket" and body["role"] == "owner" and isinstance(body["id"], str)
    assert response.headers["Location"] == f"/api/v1/workspaces/{body['id']}"
    listed = await (await client.get("/api/v1/workspaces", headers=owner.headers)).json()
    assert [w["id"] for w in listed["items"]] == [body["id"]]
    me = await (await client.get("/api/v1/auth/me", headers=owner.headers)).json()
    assert me["workspaces"] == [{"workspace_id": body["id"], "name": "Rocket", "role": "owner"}]


async def test_workspace_list_paginates_with_tamper_proof_cursors(client) -> None:
    owner = await new_user(client)
    ids = [await new_workspace(client, owner, f"W{n}") for n in range(5)]
    seen, cursor = [], None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = await (
            await client.get("/api/v1/workspaces", params=params, headers=owner.headers)
        ).json()
        seen += [w["id"] for w in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == ids
    first = await (
        await client.get("/api/v1/workspaces", params={"limit": "2"}, headers=owner.headers)
    ).json()
    forged = first["next_cursor"][:-2] + ("AA" if not first["next_cursor"].endswith("AA") else "BB")
    bad = await client.get("/api/v1/workspaces", params={"cursor": forged}, headers=owner.headers)
    assert bad.status == 422
    assert (await bad.json())["errors"][0]["field"] == "cursor"
    other = await new_user(client)
    replay = await client.get(
        "/api/v1/workspaces", params={"cursor": first["next_cursor"]}, headers=other.headers
    )
    assert replay.status == 422  # bound to its listing and user
    for limit in ("0", "201", "x"):
        assert (
            await client.get("/api/v1/workspaces", params={"limit": limit}, headers=owner.headers)
        ).status == 422


async def test_invitation_flow_gives_the_role(client, mail_url, db) -> None:
    owner, member = await new_user(client), await new_user(client)
    workspace_id = await new_workspace(client, owner)
    invitation, token = await invite_and_accept(
        client, mail_url, owner, workspace_id, member, "member"
    )
    assert invitation["status"] == "pending"
    stored = await db.invitations.find_one({"_id": invitation["id"]})
    assert stored["status"] == "accepted" and token.split("_", 2)[2] not in str(stored)
    members = await (
        await client.get(f"/api/v1/workspaces/{workspace_id}/members", headers=owner.headers)
    ).json()
    assert {(m["user_id"], m["role"]) for m in members["items"]} == {
        (owner.id, "owner"),
        (member.id, "member"),
    }
    again = await client.post(
        "/api/v1/invitations/accept", json={"token": token}, headers=member.headers
    )
    assert again.status == 422


async def test_invitation_is_only_for_its_address(client, mail_url) -> None:
    owner, invited, thief = await new_user(client), await new_user(client), await new_user(client)
    workspace_id = await new_workspace(client, owner)
    await client.post(
        f"/api/v1/workspaces/{workspace_id}/invitations",
        json={"email": invited.email, "role": "admin"},
        headers=owner.headers,
    )
    token = token_in(
        (await wait_for_mail(mail_url, invited.email, "You are invited"))["text"], "pbinv"
    )
    stolen = await client.post(
        "/api/v1/invitations/accept", json={"token": token}, headers=thief.headers
    )
    assert stolen.status == 403
    assert (
        await client.get(f"/api/v1/workspaces/{workspace_id}", headers=thief.headers)
    ).status == 404


async def test_roles_gate_writes(client, mail_url) -> None:
    owner, viewer, member, admin = [await new_user(client) for _ in range(4)]
    workspace_id = await new_workspace(client, owner)
    await invite_and_accept(client, mail_url, owner, workspace_id, viewer, "viewer")
    await invite_and_accept(client, mail_url, owner, workspace_id, member, "member")
    await invite_and_accept(client, mail_url, owner, workspace_id, admin, "admin")
    url = f"/api/v1/workspaces/{workspace_id}"

    assert (await client.get(url, headers=viewer.headers)).status == 200
    assert (await client.patch(url, json={"name": "V"}, headers=viewer.headers)).status == 403
    assert (await client.patch(url, json={"name": "M"}, headers=member.headers)).status == 403
    renamed = await client.patch(url, json={"name": "A"}, headers=admin.headers)
    assert renamed.status == 200 and (await renamed.json())["name"] == "A"
    assert (await client.delete(url, headers=admin.headers)).status == 403
    # admins manage members and viewers, not other admins or owners
    assert (
        await client.patch(
            f"{url}/members/{viewer.id}", json={"role": "member"}, headers=admin.headers
        )
    ).status == 204
    assert (
        await client.patch(
            f"{url}/members/{member.id}", json={"role": "admin"}, headers=admin.headers
        )
    ).status == 403
    assert (
        await client.patch(
            f"{url}/members/{owner.id}", json={"role": "viewer"}, headers=admin.headers
        )
    ).status == 403
    invite = await client.post(
        f"{url}/invitations",
        json={"email": "x@example.test", "role": "owner"},
        headers=admin.headers,
    )
    assert invite.status == 403
    # the last owner cannot leave or be demoted
    assert (
        await client.patch(
            f"{url}/members/{owner.id}", json={"role": "admin"}, headers=owner.headers
        )
    ).status == 409
    assert (await client.delete(f"{url}/members/{owner.id}", headers=owner.headers)).status == 409
    # anyone may leave
    assert (await client.delete(f"{url}/members/{viewer.id}", headers=viewer.headers)).status == 204
    assert (await client.get(url, headers=viewer.headers)).status == 404


async def test_other_workspaces_are_404_on_every_verb(client) -> None:
    alice, mallory = await new_user(client), await new_user(client)
    workspace_id = await new_workspace(client, alice)
    url = f"/api/v1/workspaces/{workspace_id}"
    calls = [
        ("GET", url, None),
        ("PATCH", url, {"name": "pwned"}),
        ("DELETE", url, None),
        ("GET", f"{url}/members", None),
        ("PATCH", f"{url}/members/{alice.id}", {"role": "viewer"}),
        ("DELETE", f"{url}/members/{alice.id}", None),
        ("GET", f"{url}/invitations", None),
        ("POST", f"{url}/invitations", {"email": "m@example.test", "role": "owner"}),
        ("DELETE", f"{url}/invitations/000000000000000000000000", None),
    ]
    for method, path, body in calls:
        response = await client.request(method, path, json=body, headers=mallory.headers)
        assert response.status == 404, (method, path, response.status)
        assert response.content_type == "application/problem+json"
    # and nothing changed
    still = await (await client.get(url, headers=alice.headers)).json()
    assert still["name"] == "Acme"


async def test_delete_workspace_removes_memberships(client, db) -> None:
    owner = await new_user(client)
    workspace_id = await new_workspace(client, owner)
    assert (
        await client.delete(f"/api/v1/workspaces/{workspace_id}", headers=owner.headers)
    ).status == 204
    assert await db.memberships.count_documents({"workspace_id": workspace_id}) == 0
    assert (
        await client.get(f"/api/v1/workspaces/{workspace_id}", headers=owner.headers)
    ).status == 404
    events = await db.outbox.find({"key": workspace_id}).to_list()
    assert {"workspace.created", "workspace.deleted"} <= {e["type"] for e in events}


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"name": ""},
        {"name": "x" * 101},
        {"name": 5},
        {"name": "a\u0000b"},
        {"name": "ok", "x": 1},
    ],
)
async def test_bad_workspace_bodies(client, db, body) -> None:
    owner = await new_user(client)
    before = await db.workspaces.count_documents({})
    response = await client.post("/api/v1/workspaces", json=body, headers=owner.headers)
    assert response.status == 422
    assert await db.workspaces.count_documents({}) == before


async def test_brute_force_login_hits_the_rate_limit(settings_with) -> None:
    """The per-IP auth limit (100/15 min by default) stops password guessing."""
    from aiohttp.test_utils import TestClient, TestServer

    from planboard.app import create_app
    from planboard.config import RateLimit
    from planboard.typedefs import redis_key

    # a Redis database of its own: the suite's other calls come from the same address
    redis_url = settings_with().redis_url.rsplit("/", 1)[0] + "/3"
    settings = settings_with(rate_limit_auth=RateLimit(5, 900), redis_url=redis_url)
    async with TestClient(TestServer(create_app(settings))) as limited:
        await limited.app[redis_key].flushdb()
        statuses = []
        for n in range(8):
            response = await limited.post(
                "/api/v1/auth/login", json={"email": f"victim{n}@example.test", "password": "guess"}
            )
            statuses.append(response.status)
        assert statuses[:5] == [401] * 5
        assert statuses[5:] == [429] * 3
        assert int(response.headers["Retry-After"]) >= 1
        assert response.content_type == "application/problem+json"
        assert response.headers["RateLimit-Remaining"] == "0"
