"""Workspace roles and token scopes: pure rules, no I/O."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    VIEWER = "viewer"
    MEMBER = "member"
    ADMIN = "admin"
    OWNER = "owner"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def at_least(self, other: Role) -> bool:
        return self.rank >= other.rank


_RANK = {Role.VIEWER: 0, Role.MEMBER: 1, Role.ADMIN: 2, Role.OWNER: 3}

# Scopes a personal access token can carry: <area>:read|write; write implies read.
SCOPE_AREAS = (
    "workspaces",
    "members",
    "projects",
    "tasks",
    "comments",
    "webhooks",
    "notifications",
    "attachments",
)
SCOPES = frozenset(f"{area}:{verb}" for area in SCOPE_AREAS for verb in ("read", "write"))
#: The longest a personal access token may live: chosen at creation, enforced again at
#: every use (a token stored with a longer life is refused, whatever wrote it).
PAT_MAX_DAYS = 365


def expand_scopes(scopes: frozenset[str]) -> frozenset[str]:
    """``tasks:write`` grants ``tasks:read`` too."""
    implied = {s.replace(":write", ":read") for s in scopes if s.endswith(":write")}
    return scopes | implied


def can_assign(actor: Role, current: Role | None, target: Role) -> bool:
    """May ``actor`` give someone whose role is ``current`` the role ``target``?

    Admins manage members and viewers; only owners grant, change or remove owners
    and admins.
    """
    if actor is Role.OWNER:
        return True
    if actor is Role.ADMIN:
        return target.rank < Role.ADMIN.rank and (current is None or current.rank < Role.ADMIN.rank)
    return False
