"""``/api/v1/auth/*`` and personal access tokens."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from aiohttp_apigami import docs, request_schema, response_schema

from planboard.api import schemas as s
from planboard.api.authn import accounts_key, principal_of
from planboard.api.json import json_response
from planboard.api.middleware import request_id_of
from planboard.api.ratelimit import client_address
from planboard.api.serializers import pat_out, user_out
from planboard.api.validation import validated
from planboard.domain.errors import Forbidden
from planboard.services import accounts, personal_tokens
from planboard.typedefs import db_key, settings_key

log = logging.getLogger(__name__)

routes = web.RouteTableDef()
background_tasks_key: web.AppKey[set[asyncio.Task[None]]] = web.AppKey("auth_background_tasks")
PUBLIC: list[dict[str, list[str]]] = []
BEARER: list[dict[str, list[str]]] = [{"bearer": []}]


@docs(tags=["auth"], summary="Create an account", security=PUBLIC)
@request_schema(s.RegisterBody)
@response_schema(s.UserOut, 201)
@routes.post("/api/v1/auth/register")
async def register(request: web.Request) -> web.Response:
    body = validated(request)
    user = await request.app[accounts_key].register(
        email=body["email"],
        password=body["password"],
        name=body["name"],
        request_id=request_id_of(request),
    )
    return json_response(user_out(user), status=201)


@docs(
    tags=["auth"],
    summary="Log in: a 15-minute access token and a rotating refresh token",
    security=PUBLIC,
)
@request_schema(s.LoginBody)
@response_schema(s.TokenPairOut, 200)
@routes.post("/api/v1/auth/login")
async def login(request: web.Request) -> web.Response:
    body = validated(request)
    pair = await request.app[accounts_key].login(
        email=body["email"],
        password=body["password"],
        user_agent=header_text(request.headers.get("User-Agent", "")),
        ip=client_address(request, request.app[settings_key]),
    )
    return json_response(pair.to_dict())


def header_text(value: str) -> str:
    """A header value as storable text. aiohttp decodes header bytes as UTF-8 with
    ``surrogateescape``, so bytes that are not UTF-8 arrive as lone surrogates, which a
    UTF-8 store refuses (a 500): undo the escape and decode them as U+FFFD instead."""
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


@docs(
    tags=["auth"], summary="Exchange a refresh token (single use) for a new pair", security=PUBLIC
)
@request_schema(s.RefreshBody)
@response_schema(s.TokenPairOut, 200)
@routes.post("/api/v1/auth/refresh")
async def refresh(request: web.Request) -> web.Response:
    pair = await request.app[accounts_key].refresh(validated(request)["refresh_token"])
    return json_response(pair.to_dict())


@docs(tags=["auth"], summary="End this session (its access and refresh tokens)", security=BEARER)
@request_schema(s.LogoutBody)
@routes.post("/api/v1/auth/logout")
async def logout(request: web.Request) -> web.Response:
    principal = principal_of(request)
    await request.app[accounts_key].logout(
        session_id=principal.token_id if principal.kind == "session" else None,
        refresh_token=validated(request).get("refresh_token"),
        user_id=principal.user_id,
    )
    return web.Response(status=204)


@docs(
    tags=["auth"],
    summary="Mail a password-reset code (same answer whether or not the account exists)",
    security=PUBLIC,
)
@request_schema(s.ForgotPasswordBody)
@response_schema(s.AcceptedOut, 202)
@routes.post("/api/v1/auth/forgot-password")
async def forgot_password(request: web.Request) -> web.Response:
    # The work happens after the answer, so its timing says nothing about the account.
    accounts = request.app[accounts_key]
    email = validated(request)["email"]
    task = asyncio.create_task(accounts.forgot_password(email, request_id=request_id_of(request)))
    tasks = request.app[background_tasks_key]
    tasks.add(task)
    task.add_done_callback(_finished(tasks))
    return json_response({"status": "accepted"}, status=202)


def _finished(tasks: set[asyncio.Task[None]]):  # type: ignore[no-untyped-def]
    def done(task: asyncio.Task[None]) -> None:
        tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("forgot-password failed", exc_info=task.exception())

    return done


@docs(
    tags=["auth"],
    summary="Set a new password with a reset code; ends every session",
    security=PUBLIC,
)
@request_schema(s.ResetPasswordBody)
@routes.post("/api/v1/auth/reset-password")
async def reset_password(request: web.Request) -> web.Response:
    body = validated(request)
    await request.app[accounts_key].reset_password(body["token"], body["password"])
    return web.Response(status=204)


@docs(tags=["auth"], summary="Confirm an email address with the mailed code", security=PUBLIC)
@request_schema(s.TokenBody)
@response_schema(s.UserOut, 200)
@routes.post("/api/v1/auth/verify-email")
async def verify_email(request: web.Request) -> web.Response:
    user = await request.app[accounts_key].verify_email(validated(request)["token"])
    return json_response(user_out(user))


@docs(tags=["auth"], summary="Mail a new email-confirmation code", security=BEARER)
@response_schema(s.AcceptedOut, 202)
@routes.post("/api/v1/auth/resend-verification")
async def resend_verification(request: web.Request) -> web.Response:
    principal = principal_of(request)
    user = await accounts.user_of(request.app[db_key], principal.user_id)
    if not user.get("email_verified"):
        await request.app[accounts_key].send_verification(user, request_id=request_id_of(request))
    return json_response({"status": "accepted"}, status=202)


@docs(tags=["auth"], summary="The current user and their workspaces", security=BEARER)
@response_schema(s.MeOut, 200)
@routes.get("/api/v1/auth/me")
async def me(request: web.Request) -> web.Response:
    principal = principal_of(request)
    db = request.app[db_key]
    out = user_out(await accounts.user_of(db, principal.user_id))
    if principal.has_scope("workspaces:read"):
        out["workspaces"] = await accounts.workspaces_of_user(db, principal.user_id)
    return json_response(out)


@docs(tags=["tokens"], summary="Create a personal access token (shown once)", security=BEARER)
@request_schema(s.CreatePatBody)
@response_schema(s.CreatedPatOut, 201)
@routes.post("/api/v1/tokens")
async def create_pat(request: web.Request) -> web.Response:
    principal = principal_of(request)
    body = validated(request)
    record, token = await personal_tokens.create_token(
        request.app[db_key],
        user_id=principal.user_id,
        caller_kind=principal.kind,
        name=body["name"],
        scopes=body["scopes"],
        expires_in_days=body["expires_in_days"],
    )
    return json_response({**pat_out(record), "token": token}, status=201)


@docs(
    tags=["tokens"],
    summary="List your personal access tokens (never their secrets)",
    security=BEARER,
)
@response_schema(s.PatListOut, 200)
@routes.get("/api/v1/tokens")
async def list_pats(request: web.Request) -> web.Response:
    principal = principal_of(request)
    if principal.kind != "session":
        raise Forbidden("personal access tokens are managed from a login session")
    tokens = await personal_tokens.tokens_of(request.app[db_key], principal.user_id)
    return json_response({"items": [pat_out(t) for t in tokens]})


@docs(tags=["tokens"], summary="Revoke a personal access token", security=BEARER)
@routes.delete("/api/v1/tokens/{token_id}")
async def revoke_pat(request: web.Request) -> web.Response:
    principal = principal_of(request)
    if principal.kind != "session":
        raise Forbidden("personal access tokens are managed from a login session")
    await personal_tokens.revoke_token(
        request.app[db_key], principal.user_id, request.match_info["token_id"]
    )
    return web.Response(status=204)
