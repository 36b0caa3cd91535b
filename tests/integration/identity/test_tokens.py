"""Personal access tokens and the attacks on bearer tokens."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest

from planboard.auth.tokens import issue_access_token, key_id
from tests.utils.api import new_user, new_workspace

pytestmark = pytest.mark.integration


async def create_pat(client, user, scopes, days=30, name="ci bot"):
    response = await client.post(
        "/api/v1/tokens",
        json={"name": name, "scopes": scopes, "expires_in_days": days},
        headers=user.headers,
    )
    return response, await response.json(content_type=None)


async def test_pat_is_shown_once_stored_hashed_and_scoped(client, db) -> None:
    user = await new_user(client)
    workspace_id = await new_workspace(client, user)
    response, body = await create_pat(client, user, ["workspaces:read"])
    assert response.status == 201, body
    token = body["token"]
    assert token.startswith("pbpat_")
    stored = await db.personal_access_tokens.find_one({"_id": body["id"]})
    assert token.split("_", 2)[2] not in str(stored)
    assert stored["secret_hash"] and stored["last_used_at"] is None

    listed = await (await client.get("/api/v1/tokens", headers=user.headers)).json()
    assert [t["id"] for t in listed["items"]] == [body["id"]]
    assert "token" not in listed["items"][0] and "secret_hash" not in listed["items"][0]

    pat = {"Authorization": f"Bearer {token}"}
    read = await client.get(f"/api/v1/workspaces/{workspace_id}", headers=pat)
    assert read.status == 200
    write = await client.patch(
        f"/api/v1/workspaces/{workspace_id}", json={"name": "x"}, headers=pat
    )
    assert write.status == 403
    assert "workspaces:write" in (await write.json())["detail"]
    stored = await db.personal_access_tokens.find_one({"_id": body["id"]})
    assert stored["last_used_at"] is not None


async def test_write_scope_implies_read(client) -> None:
    user = await new_user(client)
    workspace_id = await new_workspace(client, user)
    _, body = await create_pat(client, user, ["workspaces:write"])
    pat = {"Authorization": f"Bearer {body['token']}"}
    assert (await client.get(f"/api/v1/workspaces/{workspace_id}", headers=pat)).status == 200


async def test_pat_cannot_manage_tokens(client) -> None:
    user = await new_user(client)
    _, body = await create_pat(client, user, ["workspaces:read"])
    pat = {"Authorization": f"Bearer {body['token']}"}
    response = await client.post(
        "/api/v1/tokens", json={"name": "n", "scopes": ["tasks:read"]}, headers=pat
    )
    assert response.status == 403
    assert (await client.get("/api/v1/tokens", headers=pat)).status == 403


async def test_revoked_pat_stops_working(client) -> None:
    user = await new_user(client)
    _, body = await create_pat(client, user, ["workspaces:read"])
    pat = {"Authorization": f"Bearer {body['token']}"}
    assert (await client.get("/api/v1/workspaces", headers=pat)).status == 200
    assert (await client.delete(f"/api/v1/tokens/{body['id']}", headers=user.headers)).status == 204
    assert (await client.get("/api/v1/workspaces", headers=pat)).status == 401
    assert (await client.delete(f"/api/v1/tokens/{body['id']}", headers=user.headers)).status == 404


async def test_expired_pat_is_refused(client, db) -> None:
    user = await new_user(client)
    _, body = await create_pat(client, user, ["workspaces:read"])
    from datetime import UTC, datetime, timedelta

    await db.personal_access_tokens.update_one(
        {"_id": body["id"]}, {"$set": {"expires_at": datetime.now(UTC) - timedelta(seconds=1)}}
    )
    response = await client.get(
        "/api/v1/workspaces", headers={"Authorization": f"Bearer {body['token']}"}
    )
    assert response.status == 401
    assert "expired" in (await response.json())["detail"]


async def test_another_users_token_cannot_be_revoked(client) -> None:
    alice, bob = await new_user(client), await new_user(client)
    _, body = await create_pat(client, alice, ["workspaces:read"])
    assert (await client.delete(f"/api/v1/tokens/{body['id']}", headers=bob.headers)).status == 404


@pytest.mark.parametrize(
    ("scopes", "days"),
    [
        (["tasks:destroy"], 30),
        ([], 30),
        (["tasks:read"], 0),
        (["tasks:read"], 366),
        ("tasks:read", 30),
    ],
)
async def test_bad_pat_requests(client, scopes, days) -> None:
    user = await new_user(client)
    response, body = await create_pat(client, user, scopes, days)
    assert response.status == 422, body


# --- attacks on access tokens -------------------------------------------------------------


def b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


async def status_with(client, token: str) -> int:
    return (
        await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    ).status


async def test_alg_none_token_is_refused(client, settings) -> None:
    user = await new_user(client)
    claims = jwt.decode(user.access_token, options={"verify_signature": False})
    forged = (
        f"{b64({'alg': 'none', 'typ': 'JWT', 'kid': key_id(settings.secret_key)})}.{b64(claims)}."
    )
    assert await status_with(client, forged) == 401


async def test_token_signed_with_another_key_is_refused(client, settings) -> None:
    user = await new_user(client)
    claims = jwt.decode(user.access_token, options={"verify_signature": False})
    forged = jwt.encode(
        claims,
        "attacker-secret-attacker-secret-000000",
        algorithm="HS256",
        headers={"kid": key_id(settings.secret_key)},
    )
    assert await status_with(client, forged) == 401


async def test_tampered_payload_is_refused(client) -> None:
    user = await new_user(client)
    header, payload, signature = user.access_token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["sub"] = "someone-else"
    assert await status_with(client, f"{header}.{b64(claims)}.{signature}") == 401


async def test_expired_token_is_refused(client, settings) -> None:
    user = await new_user(client)
    claims = jwt.decode(user.access_token, options={"verify_signature": False})
    token, _ = issue_access_token(
        secret=settings.secret_key,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        user_id=user.id,
        session_id=claims["sid"],
        ttl_s=60,
        now=time.time() - 3600,
    )
    assert await status_with(client, token) == 401


async def test_wrong_audience_or_issuer_is_refused(client, settings) -> None:
    user = await new_user(client)
    claims = jwt.decode(user.access_token, options={"verify_signature": False})
    for change in ({"aud": "another-api"}, {"iss": "someone-else"}):
        forged = jwt.encode(
            {**claims, **change},
            settings.secret_key,
            algorithm="HS256",
            headers={"kid": key_id(settings.secret_key)},
        )
        assert await status_with(client, forged) == 401


async def test_hs_rs_confusion_is_refused(client, settings) -> None:
    """An RS256/HS512 header with our key as the HMAC secret must not verify."""
    user = await new_user(client)
    claims = jwt.decode(user.access_token, options={"verify_signature": False})
    for alg in ("HS512", "HS384"):
        forged = jwt.encode(
            claims, settings.secret_key, algorithm=alg, headers={"kid": key_id(settings.secret_key)}
        )
        assert await status_with(client, forged) == 401
    header = {"alg": "RS256", "typ": "JWT", "kid": key_id(settings.secret_key)}
    assert await status_with(client, f"{b64(header)}.{b64(claims)}.c2lnbmF0dXJl") == 401


async def test_garbage_tokens_are_401_not_500(client) -> None:
    for token in (
        "x",
        "a.b.c",
        "pbpat_",
        "pbpat_abc_" + "x" * 40,
        "pbpat_" + "z" * 500,
        "🙂.🙂.🙂",
    ):
        assert await status_with(client, token) == 401


async def test_previous_signing_key_still_verifies_until_expiry(settings_with, client) -> None:
    """Key rotation: tokens signed by a retired key keep working while it is listed."""
    from aiohttp.test_utils import TestClient, TestServer

    from planboard.app import create_app

    user = await new_user(client)
    old_key = settings_with().secret_key
    rotated = settings_with(secret_key="n" * 48, previous_secret_keys=(old_key,))
    async with TestClient(TestServer(create_app(rotated))) as other:
        assert (await other.get("/api/v1/auth/me", headers=user.headers)).status == 200
    without = settings_with(secret_key="n" * 48)
    async with TestClient(TestServer(create_app(without))) as other:
        assert (await other.get("/api/v1/auth/me", headers=user.headers)).status == 401
