"""Authentication: turns ``Authorization: Bearer …`` into the request's Principal."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from planboard.api.principal import Principal, principal_key
from planboard.domain.errors import Unauthorized
from planboard.services.access import Caller
from planboard.services.accounts import Accounts
from planboard.typedefs import near_cache_key

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

accounts_key = web.AppKey("accounts", Accounts)


@web.middleware
async def authentication_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A bad credential is a 401 at once; no credential leaves the request anonymous."""
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, credential = header.partition(" ")
        if scheme.lower() != "bearer" or not credential.strip():
            raise Unauthorized("use Authorization: Bearer <token>")
        found = await request.app[accounts_key].authenticate(credential.strip())
        request[principal_key] = Principal(
            user_id=found.user_id, kind=found.kind, token_id=found.token_id, scopes=found.scopes
        )
    return await handler(request)


def principal_of(request: web.Request) -> Principal:
    principal = request.get(principal_key)
    if not isinstance(principal, Principal):
        raise Unauthorized("authentication required")
    return principal


def caller_of(request: web.Request) -> Caller:
    principal = principal_of(request)
    return Caller(
        user_id=principal.user_id, scopes=principal.scopes, near=request.app[near_cache_key]
    )
