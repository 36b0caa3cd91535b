"""Helpers for API tests: users, tokens and mail read from the real mail sink."""

from __future__ import annotations

import asyncio
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from redis.asyncio import Redis

from planboard.services import near_cache

PASSWORD = "correct horse battery staple"
#: The session's Redis (tests/conftest.py sets it). A helper that writes around the API
#: announces what it changed, as the API does, so no process's near cache keeps the old
#: answer (services/near_cache.py).
REDIS_URL: str | None = None


def unique_email(tag: str = "user") -> str:
    return f"{tag}-{uuid.uuid4().hex[:12]}@example.test"


@dataclass
class User:
    id: str
    email: str
    password: str
    name: str
    access_token: str = ""
    refresh_token: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


async def register(
    client, *, email: str | None = None, password: str = PASSWORD, name: str = "Ada Lovelace"
) -> User:
    email = email or unique_email()
    response = await client.post(
        "/api/v1/auth/register", json={"email": email, "password": password, "name": name}
    )
    body = await response.json()
    assert response.status == 201, body
    return User(id=body["id"], email=email, password=password, name=name)


async def login(client, user: User) -> User:
    response = await client.post(
        "/api/v1/auth/login", json={"email": user.email, "password": user.password}
    )
    body = await response.json()
    assert response.status == 200, body
    user.access_token = body["access_token"]
    user.refresh_token = body["refresh_token"]
    return user


async def new_user(client, **kwargs: Any) -> User:
    return await login(client, await register(client, **kwargs))


async def new_workspace(client, user: User, name: str = "Acme") -> str:
    response = await client.post("/api/v1/workspaces", json={"name": name}, headers=user.headers)
    body = await response.json()
    assert response.status == 201, body
    return str(body["id"])


async def wait_for_mail(
    mail_url: str, to: str, subject: str, timeout: float = 45.0
) -> dict[str, Any]:
    """Poll the dev mail sink until a message to ``to`` whose subject contains ``subject``."""
    async with aiohttp.ClientSession() as http:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            async with http.get(f"{mail_url}/messages", params={"to": to}) as response:
                items = (await response.json())["items"]
            found = [m for m in items if subject in m["subject"]]
            if found:
                return found[-1]
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(
                    f"no mail to {to} about {subject!r} within {timeout}s: {items}"
                )
            await asyncio.sleep(0.2)


async def mails_to(mail_url: str, to: str) -> list[dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{mail_url}/messages", params={"to": to}) as r,
    ):
        return list((await r.json())["items"])


def token_in(text: str, prefix: str) -> str:
    match = re.search(rf"\b{prefix}_[A-Za-z0-9]+_[A-Za-z0-9_-]+", text)
    assert match, f"no {prefix} token in mail: {text!r}"
    return match.group(0)


# --- planning helpers ---------------------------------------------------------------------

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
SAMPLE_PLAN = (FIXTURES / "sample-plan.md").read_text(encoding="utf-8")
MARKDOWN = {"Content-Type": "text/markdown"}


def with_headers(user: User, **extra: str) -> dict[str, str]:
    return {**user.headers, **extra}


async def json_of(response) -> Any:
    return await response.json(content_type=None)


async def expect(response, status: int) -> Any:
    """The JSON body, after asserting the status (the body is shown when it differs)."""
    body = await response.json(content_type=None) if response.status != 204 else None
    assert response.status == status, body
    return body


async def expect_problem(response, status: int, field: str | None = None) -> dict[str, Any]:
    """A problem+json answer with ``status``, naming ``field`` in ``errors`` if given."""
    body = await response.json(content_type=None)
    assert response.status == status, body
    assert response.content_type == "application/problem+json", response.content_type
    assert {"type", "title", "status", "detail", "instance"} <= set(body), body
    assert body["status"] == status
    if field is not None:  # the field itself, or one of its items (``status.0``)
        fields = [e["field"] for e in body.get("errors", [])]
        assert any(f == field or f.startswith(field + ".") for f in fields), (field, body)
    return body


async def new_project(client, user: User, workspace_id: str, **body: Any) -> dict[str, Any]:
    body.setdefault("name", f"Project {uuid.uuid4().hex[:6]}")
    response = await client.post(
        f"/api/v1/workspaces/{workspace_id}/projects", json=body, headers=user.headers
    )
    return await expect(response, 201)


async def import_plan(
    client, user: User, workspace_id: str, text: str = SAMPLE_PLAN, key: str | None = None
) -> dict[str, Any]:
    params = {"key": key} if key else None
    response = await client.post(
        f"/api/v1/workspaces/{workspace_id}/projects/import",
        data=text.encode("utf-8"),
        params=params,
        headers=with_headers(user, **MARKDOWN),
    )
    return await expect(response, 201)


async def new_task(client, user: User, project_id: str, **body: Any) -> dict[str, Any]:
    body.setdefault("title", f"Task {uuid.uuid4().hex[:6]}")
    response = await client.post(
        f"/api/v1/projects/{project_id}/tasks", json=body, headers=user.headers
    )
    return await expect(response, 201)


async def tasks_of(client, user: User, project_id: str, **params: Any) -> list[dict[str, Any]]:
    """Every task of a project (all pages)."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {"limit": "200", **params}
        if cursor:
            query["cursor"] = cursor
        response = await client.get(
            f"/api/v1/projects/{project_id}/tasks", params=query, headers=user.headers
        )
        body = await expect(response, 200)
        items += body["items"]
        cursor = body["next_cursor"]
        if not cursor:
            return items


async def by_ref(client, user: User, project_id: str) -> dict[str, dict[str, Any]]:
    """Tasks keyed by plan_ref (or key)."""
    return {t["plan_ref"] or t["key"]: t for t in await tasks_of(client, user, project_id)}


async def add_member(db, workspace_id: str, user: User, role: str) -> None:
    """Make ``user`` a member directly in MongoDB (fast path for authorization tests)."""
    await db.memberships.insert_one(
        {
            "_id": uuid.uuid4().hex[:24],
            "workspace_id": workspace_id,
            "user_id": user.id,
            "role": role,
            "created_at": datetime.now(UTC),
        }
    )
    if role == "owner":  # counted as the API counts owners (store/quotas.py)
        await db.workspaces.update_one({"_id": workspace_id}, {"$inc": {"owner_count": 1}})
    await announce(near_cache.members_tag(workspace_id))


async def announce(*tags: str) -> None:
    """Publish the invalidation of ``tags`` to every API instance of the session."""
    if REDIS_URL is None:
        return
    client: Redis = Redis.from_url(REDIS_URL)
    try:
        await client.publish(near_cache.CHANNEL, "\n".join(tags))
    finally:
        await client.aclose()
    # Redis has written the message to every subscriber before answering PUBLISH; the
    # session's API instances run on this event loop, so yielding lets them apply it.
    await asyncio.sleep(0.02)


async def new_pat(client, user: User, scopes: list[str]) -> dict[str, str]:
    """Headers carrying a personal access token with ``scopes``."""
    response = await client.post(
        "/api/v1/tokens",
        json={"name": "bot", "scopes": scopes, "expires_in_days": 1},
        headers=user.headers,
    )
    body = await expect(response, 201)
    return {"Authorization": f"Bearer {body['token']}"}
