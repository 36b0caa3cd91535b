"""Who is calling: set on the request by the authentication middleware."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: a user via a JWT access token or a personal access token."""

    user_id: str
    kind: str  # "session" (JWT access token) or "pat" (personal access token)
    token_id: str  # the JWT's session family id, or the PAT's id
    scopes: frozenset[str] | None = None  # None: every scope (a user's own session)

    @property
    def rate_limit_key(self) -> str:
        """Limits apply per user for sessions and per token for PATs."""
        return f"pat:{self.token_id}" if self.kind == "pat" else f"user:{self.user_id}"

    def has_scope(self, scope: str) -> bool:
        return self.scopes is None or scope in self.scopes


principal_key = web.RequestKey("principal", Principal)
