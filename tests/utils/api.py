"""Helpers for API tests: users, tokens and mail read from the real mail sink."""

from __future__ import annotations

import asyncio
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp

PASSWORD = "correct horse battery staple"


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
