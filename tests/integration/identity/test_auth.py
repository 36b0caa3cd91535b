"""Accounts and sessions against the real stack (mail read from the dev mail sink)."""

from __future__ import annotations

import asyncio

import pytest

from tests.utils.api import (
    PASSWORD,
    login,
    mails_to,
    new_user,
    register,
    token_in,
    unique_email,
    wait_for_mail,
)

pytestmark = pytest.mark.integration


async def test_register_returns_the_contract_and_hides_the_hash(client, db) -> None:
    email = unique_email("reg")
    response = await client.post(
        "/api/v1/auth/register",
        json={"email": email.upper(), "password": PASSWORD, "name": "  Grace  "},
    )
    body = await response.json()
    assert response.status == 201
    assert set(body) >= {"id", "email", "name"}
    assert body["email"] == email  # normalized
    assert body["name"] == "Grace"
    assert "password" not in str(body) and "hash" not in str(body)
    stored = await db.users.find_one({"_id": body["id"]})
    assert stored["password_hash"].startswith("$argon2id$")
    assert PASSWORD not in str(stored)


async def test_duplicate_email_is_409_and_changes_nothing(client, db) -> None:
    user = await register(client)
    response = await client.post(
        "/api/v1/auth/register", json={"email": user.email, "password": PASSWORD, "name": "Other"}
    )
    assert response.status == 409
    assert response.content_type == "application/problem+json"
    assert await db.users.count_documents({"email": user.email}) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "not-an-email", "password": PASSWORD, "name": "A"}, "email"),
        ({"email": "a@example.test", "password": "short", "name": "A"}, "password"),
        ({"email": "a@example.test", "password": "aaaaaaaaaaaa", "name": "A"}, "password"),
        ({"email": "a@example.test", "password": "password1234", "name": "A"}, "password"),
        ({"email": "a@example.test", "password": PASSWORD, "name": ""}, "name"),
        ({"email": "a@example.test", "password": PASSWORD, "name": "x" * 101}, "name"),
        ({"email": "a@example.test", "password": PASSWORD}, "name"),
        ({"email": "a@example.test", "password": PASSWORD, "name": "A", "role": "admin"}, "role"),
        ({"email": ["a@example.test"], "password": PASSWORD, "name": "A"}, "email"),
        ({"email": "a@example.test", "password": "p" * 300, "name": "A"}, "password"),
    ],
)
async def test_bad_registrations_name_the_field(client, db, body, field) -> None:
    before = await db.users.count_documents({})
    response = await client.post("/api/v1/auth/register", json=body)
    problem = await response.json(content_type=None)
    assert response.status == 422, problem
    assert response.content_type == "application/problem+json"
    assert field in [e["field"] for e in problem["errors"]]
    assert await db.users.count_documents({}) == before


async def test_non_json_bodies_are_refused(client) -> None:
    response = await client.post(
        "/api/v1/auth/login",
        data="email=a&password=b",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status == 415
    response = await client.post(
        "/api/v1/auth/login", data="{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status == 400
    assert (await response.json(content_type=None))[
        "detail"
    ] == "the request body is not valid JSON"
    response = await client.post("/api/v1/auth/login", json=["a", "b"])
    assert response.status == 422


async def test_login_answers_the_same_for_unknown_user_and_wrong_password(client) -> None:
    user = await register(client)
    wrong = await client.post(
        "/api/v1/auth/login", json={"email": user.email, "password": "wrong password!"}
    )
    unknown = await client.post(
        "/api/v1/auth/login", json={"email": unique_email(), "password": PASSWORD}
    )
    wrong_body, unknown_body = await wrong.json(), await unknown.json()
    assert wrong.status == unknown.status == 401
    assert wrong_body["detail"] == unknown_body["detail"] == "invalid email or password"
    assert wrong.headers["WWW-Authenticate"].startswith("Bearer")


async def test_login_gives_the_contract_and_me_works(client) -> None:
    user = await register(client)
    response = await client.post(
        "/api/v1/auth/login", json={"email": user.email, "password": PASSWORD}
    )
    body = await response.json()
    assert response.status == 200
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 900
    assert body["access_token"].count(".") == 2
    assert body["refresh_token"].startswith("pbrt_")
    me = await client.get(
        "/api/v1/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    me_body = await me.json()
    assert me.status == 200
    assert me_body["id"] == user.id
    assert me_body["workspaces"] == []


async def test_me_needs_a_token(client) -> None:
    response = await client.get("/api/v1/auth/me")
    assert response.status == 401
    response = await client.get("/api/v1/auth/me", headers={"Authorization": "Basic abc"})
    assert response.status == 401


async def test_refresh_rotates_and_reuse_revokes_the_family(client) -> None:
    user = await new_user(client)
    first_refresh = user.refresh_token
    rotated = await client.post("/api/v1/auth/refresh", json={"refresh_token": first_refresh})
    pair = await rotated.json()
    assert rotated.status == 200
    assert pair["refresh_token"] != first_refresh
    # the old token again: theft detected, the whole session ends
    reuse = await client.post("/api/v1/auth/refresh", json={"refresh_token": first_refresh})
    assert reuse.status == 401
    assert "revoked" in (await reuse.json())["detail"]
    after = await client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert after.status == 401
    me = await client.get(
        "/api/v1/auth/me", headers={"Authorization": f"Bearer {pair['access_token']}"}
    )
    assert me.status == 401


async def test_concurrent_refreshes_of_one_token_yield_one_winner(client) -> None:
    user = await new_user(client)
    responses = await asyncio.gather(
        *(
            client.post("/api/v1/auth/refresh", json={"refresh_token": user.refresh_token})
            for _ in range(5)
        )
    )
    assert sorted(r.status for r in responses).count(200) <= 1
    assert all(r.status in (200, 401) for r in responses)


async def test_logout_revokes_access_and_refresh(client) -> None:
    user = await new_user(client)
    response = await client.post("/api/v1/auth/logout", json={}, headers=user.headers)
    assert response.status == 204
    assert (await client.get("/api/v1/auth/me", headers=user.headers)).status == 401
    again = await client.post("/api/v1/auth/refresh", json={"refresh_token": user.refresh_token})
    assert again.status == 401


async def test_logout_with_someone_elses_refresh_token_is_refused(client) -> None:
    alice, bob = await new_user(client), await new_user(client)
    response = await client.post(
        "/api/v1/auth/logout", json={"refresh_token": bob.refresh_token}, headers=alice.headers
    )
    assert response.status == 422
    still = await client.post("/api/v1/auth/refresh", json={"refresh_token": bob.refresh_token})
    assert still.status == 200


async def test_verification_mail_confirms_the_address_once(client, mail_url) -> None:
    user = await new_user(client)
    mail = await wait_for_mail(mail_url, user.email, "Confirm your Planboard email")
    token = token_in(mail["text"], "pbev")
    response = await client.post("/api/v1/auth/verify-email", json={"token": token})
    assert response.status == 200
    assert (await response.json())["email_verified"] is True
    again = await client.post("/api/v1/auth/verify-email", json={"token": token})
    assert again.status == 422
    tampered = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    assert (await client.post("/api/v1/auth/verify-email", json={"token": tampered})).status == 422


async def test_password_reset_flow_by_mail(client, mail_url, db) -> None:
    user = await new_user(client)
    response = await client.post("/api/v1/auth/forgot-password", json={"email": user.email})
    assert response.status == 202
    mail = await wait_for_mail(mail_url, user.email, "Reset your Planboard password")
    token = token_in(mail["text"], "pbrs")
    stored = await db.action_tokens.find_one(
        {"kind": "reset_password", "user_id": user.id, "used": False}
    )
    assert stored is not None and token.split("_", 2)[2] not in str(stored)  # only a hash is stored

    weak = await client.post(
        "/api/v1/auth/reset-password", json={"token": token, "password": "short"}
    )
    assert weak.status == 422  # a weak password does not burn the token
    new_password = "a much better passphrase 42"
    ok = await client.post(
        "/api/v1/auth/reset-password", json={"token": token, "password": new_password}
    )
    assert ok.status == 204
    reused = await client.post(
        "/api/v1/auth/reset-password", json={"token": token, "password": new_password + "!"}
    )
    assert reused.status == 422
    # every session ended; the old password is gone, the new one works
    assert (await client.get("/api/v1/auth/me", headers=user.headers)).status == 401
    old = await client.post("/api/v1/auth/login", json={"email": user.email, "password": PASSWORD})
    assert old.status == 401
    user.password = new_password
    await login(client, user)


async def test_forgot_password_answers_the_same_for_unknown_addresses(client, mail_url) -> None:
    ghost = unique_email("ghost")
    response = await client.post("/api/v1/auth/forgot-password", json={"email": ghost})
    assert response.status == 202
    assert await response.json() == {"status": "accepted"}
    await asyncio.sleep(1)
    assert await mails_to(mail_url, ghost) == []


async def test_a_new_reset_code_retires_the_previous_one(client, mail_url) -> None:
    user = await new_user(client)
    await client.post("/api/v1/auth/forgot-password", json={"email": user.email})
    first = token_in((await wait_for_mail(mail_url, user.email, "Reset your"))["text"], "pbrs")
    await client.post("/api/v1/auth/forgot-password", json={"email": user.email})
    for _ in range(300):
        resets = [m for m in await mails_to(mail_url, user.email) if "Reset" in m["subject"]]
        if len(resets) == 2:
            break
        await asyncio.sleep(0.2)
    assert len(resets) == 2
    codes = {token_in(m["text"], "pbrs") for m in resets}  # the sink's order is not sent order
    assert len(codes) == 2 and first in codes
    (second,) = codes - {first}
    stale = await client.post(
        "/api/v1/auth/reset-password", json={"token": first, "password": "another fine passphrase"}
    )
    assert stale.status == 422
    fresh = await client.post(
        "/api/v1/auth/reset-password", json={"token": second, "password": "another fine passphrase"}
    )
    assert fresh.status == 204
