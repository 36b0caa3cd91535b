"""Comments and activity → API representations."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def comment_out(comment: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": comment["_id"],
        "task_id": comment["task_id"],
        "project_id": comment["project_id"],
        "author_id": comment.get("author_id"),
        "body": comment["body"],
        "mentions": list(comment.get("mentions") or []),
        "edited": bool(comment.get("edited")),
        "created_at": comment.get("created_at"),
        "updated_at": comment.get("updated_at"),
        "version": comment.get("version", 1),
    }


def activity_out(item: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": item["_id"],
        "at": item.get("at"),
        "actor_id": item.get("actor_id"),
        "entity": item.get("entity"),
        "entity_id": item.get("entity_id"),
        "action": item.get("action"),
        "task_id": item.get("task_id"),
        "task_key": item.get("task_key"),
        "project_id": item.get("project_id"),
        "changes": list(item.get("changes") or []),
        "data": dict(item.get("data") or {}),
    }
