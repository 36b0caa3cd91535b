"""Bearer tokens are only as good as what stands behind them: an access token whose
session or user no longer exists is refused (401 problem+json), and so is any token that
lives longer than this service would issue one for, whoever signed or stored it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import jwt
import pytest
from aiohttp.test_utils import TestClient, TestServer

from planboard.app import create_app
from planboard.auth.tokens import issue_access_token
from planboard.store.ids import utcnow
from tests.utils.api import User, expect, expect_problem, login, new_pat, new_user

pytestmark = pytest.mark.integration

NEAR_TTL_S = 1  # this instance's near cache keeps a live session at most this long


@pytest.fixture(scope="module")
async def api(settings, db) -> AsyncIterator[TestClient[Any, Any]]:
    app = create_app(settings.replace(near_cache_ttl_s=NEAR_TTL_S))
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    yield client
    await client.close()


def session_of(user: User) -> str:
    return str(jwt.decode(user.access_token, options={"verify_signature": False})["sid"])


async def refused_soon(api, headers: dict[str, str], path: str = "/api/v1/auth/me") -> dict:
    """A deletion in MongoDB is not announced: the near cache may answer from what it
    found live for up to its TTL, then MongoDB is asked and the token refused."""
    deadline = asyncio.get_running_loop().time() + NEAR_TTL_S + 5
    while True:
        response = await api.get(path, headers=headers)
        if response.status == 401 or asyncio.get_running_loop().time() > deadline:
            return await expect_problem(response, 401)
        await response.read()
        await asyncio.sleep(0.2)


async def mints_no_token(api, headers: dict[str, str]) -> None:
    body = {"name": "stolen", "scopes": ["tasks:read"], "expires_in_days": 30}
    await expect_problem(await api.post("/api/v1/tokens", json=body, headers=headers), 401)


async def test_a_deleted_session_ends_its_access_tokens(api, db) -> None:
    user = await new_user(api)
    await expect(await api.get("/api/v1/auth/me", headers=user.headers), 200)
    await db.sessions.delete_one({"_id": session_of(user)})
    problem = await refused_soon(api, user.headers)
    assert problem["detail"] == "this session has ended; log in again"
    await mints_no_token(api, user.headers)
    fresh = await login(api, replace(user, access_token=""))  # a new login works
    await expect(await api.get("/api/v1/auth/me", headers=fresh.headers), 200)


async def test_a_deleted_user_s_tokens_stop_working(api, db) -> None:
    user = await new_user(api)
    pat = await new_pat(api, user, ["tasks:read"])
    await expect(await api.get("/api/v1/auth/me", headers=user.headers), 200)
    await expect(await api.get("/api/v1/tasks/" + "0" * 24, headers=pat), 404)
    await db.users.delete_one({"_id": user.id})
    await refused_soon(api, user.headers)
    await mints_no_token(api, user.headers)
    problem = await refused_soon(api, pat, "/api/v1/tasks/" + "0" * 24)
    assert problem["detail"] == "this access token's user no longer exists"
    refreshed = await api.post("/api/v1/auth/refresh", json={"refresh_token": user.refresh_token})
    await expect_problem(refreshed, 401)


async def test_a_revoked_session_is_refused_at_once(api, db) -> None:
    user = await new_user(api)
    await expect(await api.get("/api/v1/auth/me", headers=user.headers), 200)  # now cached
    await expect(await api.post("/api/v1/auth/logout", json={}, headers=user.headers), 204)
    await expect_problem(await api.get("/api/v1/auth/me", headers=user.headers), 401)
    await mints_no_token(api, user.headers)


async def test_a_token_signed_with_the_key_but_living_too_long_is_refused(
    api, db, settings
) -> None:
    """What a leaked signing key (or a misconfigured issuer) could mint: a 30-day access
    token for a real, live session. Its lifetime alone refuses it."""
    user = await new_user(api)
    forged, _ = issue_access_token(
        secret=settings.secret_key,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        user_id=user.id,
        session_id=session_of(user),
        ttl_s=30 * 86400,
    )
    headers = {"Authorization": f"Bearer {forged}"}
    problem = await expect_problem(await api.get("/api/v1/auth/me", headers=headers), 401)
    assert problem["detail"] == "token lifetime longer than allowed"
    await mints_no_token(api, headers)
    exact, _ = issue_access_token(
        secret=settings.secret_key,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        user_id=user.id,
        session_id=session_of(user),
        ttl_s=settings.access_token_ttl_s,
    )
    await expect(
        await api.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {exact}"}), 200
    )


async def test_a_token_naming_another_user_s_session_is_refused(api, settings) -> None:
    alice, mallory = await new_user(api), await new_user(api)
    borrowed, _ = issue_access_token(
        secret=settings.secret_key,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        user_id=mallory.id,
        session_id=session_of(alice),
        ttl_s=60,
    )
    headers = {"Authorization": f"Bearer {borrowed}"}
    await expect_problem(await api.get("/api/v1/auth/me", headers=headers), 401)


async def test_a_stored_token_living_longer_than_its_maximum_is_refused(api, db) -> None:
    user = await new_user(api)
    pat = await new_pat(api, user, ["tasks:read"])
    path = "/api/v1/tasks/" + "0" * 24
    await expect(await api.get(path, headers=pat), 404)
    token_id = pat["Authorization"].split("_")[1]
    stored = await db.personal_access_tokens.find_one({"_id": token_id})
    await db.personal_access_tokens.update_one(
        {"_id": token_id}, {"$set": {"expires_at": stored["created_at"] + timedelta(days=3650)}}
    )
    problem = await expect_problem(await api.get(path, headers=pat), 401)
    assert problem["detail"] == "this access token lives longer than allowed"


async def test_a_refresh_token_is_capped_at_the_configured_lifetime(api, db, settings) -> None:
    user = await new_user(api)
    token_id = user.refresh_token.split("_")[1]
    long_ago = utcnow() - timedelta(seconds=settings.refresh_token_ttl_s + 60)
    await db.refresh_tokens.update_one(
        {"_id": token_id},
        {"$set": {"created_at": long_ago, "expires_at": utcnow() + timedelta(days=365)}},
    )
    refreshed = await api.post("/api/v1/auth/refresh", json={"refresh_token": user.refresh_token})
    problem = await expect_problem(refreshed, 401)
    assert "expired" in problem["detail"]
