"""Stored documents → API representations (``_id`` → ``id``, secrets never included)."""

from __future__ import annotations

from typing import Any

from planboard.store.document import Document


def user_out(user: Document) -> dict[str, Any]:
    return {
        "id": user["_id"],
        "email": user["email"],
        "name": user["name"],
        "email_verified": bool(user.get("email_verified")),
        "created_at": user.get("created_at"),
    }


def workspace_out(workspace: Document, role: str | None = None) -> dict[str, Any]:
    out = {
        "id": workspace["_id"],
        "name": workspace["name"],
        "calendar": workspace.get("calendar"),
        "created_at": workspace.get("created_at"),
        "updated_at": workspace.get("updated_at"),
        "version": workspace.get("version", 1),
    }
    if role is not None:
        out["role"] = role
    return out


def pat_out(token: Document) -> dict[str, Any]:
    return {
        "id": token["_id"],
        "name": token["name"],
        "scopes": token.get("scopes", []),
        "created_at": token.get("created_at"),
        "expires_at": token.get("expires_at"),
        "last_used_at": token.get("last_used_at"),
        "revoked": bool(token.get("revoked")),
    }


def invitation_out(invitation: Document) -> dict[str, Any]:
    return {
        "id": invitation["_id"],
        "workspace_id": invitation["workspace_id"],
        "email": invitation["email"],
        "role": invitation["role"],
        "status": invitation["status"],
        "invited_by": invitation.get("invited_by"),
        "created_at": invitation.get("created_at"),
        "expires_at": invitation.get("expires_at"),
    }
