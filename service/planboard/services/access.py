"""The one authorization helper every handler uses.

Membership decides visibility: a workspace (or anything in it) the caller is not a
member of is a 404, never a 403, so ids of other tenants leak nothing. A member
whose role or token scope is too small gets 403.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pymongo.asynchronous.database import AsyncDatabase

from planboard.domain.access import Role
from planboard.domain.errors import Forbidden, NotFound
from planboard.services.near_cache import NearCache, members_tag
from planboard.store import memberships
from planboard.store.document import Document


@dataclass(frozen=True, slots=True)
class Caller:
    """The slice of an authenticated principal that authorization needs."""

    user_id: str
    scopes: frozenset[str] | None  # None: a user's own session, every scope
    # The process's near cache (services/near_cache.py), for memberships; the API sets it.
    near: NearCache | None = field(default=None, compare=False, repr=False)

    def require_scope(self, scope: str) -> None:
        if self.scopes is not None and scope not in self.scopes:
            raise Forbidden(f"this token lacks the scope {scope!r}")


@dataclass(frozen=True, slots=True)
class Access:
    workspace_id: str
    user_id: str
    role: Role


async def authorize(
    db: AsyncDatabase[Document],
    caller: Caller,
    workspace_id: str,
    *,
    scope: str,
    role: Role = Role.VIEWER,
    what: str = "workspace",
) -> Access:
    """Check scope, membership and role for an action in ``workspace_id``."""
    caller.require_scope(scope)
    role_name = await _role_of(db, caller, workspace_id)
    if not role_name:
        raise NotFound(f"{what} not found")
    current = Role(role_name)
    if not current.at_least(role):
        raise Forbidden(
            f"this needs the {role.value} role in the workspace; you are {current.value}"
        )
    return Access(workspace_id=workspace_id, user_id=caller.user_id, role=current)


NEAR_MEMBER_KEY = "member:"


async def _role_of(db: AsyncDatabase[Document], caller: Caller, workspace_id: str) -> str:
    """The caller's role in the workspace ("" for none): from the near cache while it is
    live (every membership change announces ``m:<workspace>``), else from MongoDB."""
    near, stamp = caller.near, -1
    key = f"{NEAR_MEMBER_KEY}{workspace_id}:{caller.user_id}"
    if near is not None and near.live:
        cached = near.get(key)
        if cached is not None:
            return str(cached)
        stamp = near.stamp()  # before MongoDB is read
    membership = await memberships.get(db, workspace_id, caller.user_id)
    role = "" if membership is None else membership["role"]
    if near is not None:
        near.put(key, role, (members_tag(workspace_id),), stamp=stamp, size=128)
    return role
