"""Projects, phases, tasks, comments and activity → API representations; list cursors."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from planboard.api.pagination import CursorCodec
from planboard.domain.errors import ValidationFailed
from planboard.store.document import Document


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


# --------------------------------------------------------------------------- cursors


def cursor_after(codec: CursorCodec, purpose: str, cursor: str | None) -> tuple[Any, str] | None:
    """The ``(sort value, id)`` a cursor points after (tamper-proof, bound to ``purpose``)."""
    if not cursor:
        return None
    position = codec.decode(purpose, cursor)
    value: Any = position.get("v")
    if position.get("t") == "dt" and isinstance(value, str):
        value = datetime.fromisoformat(value)
    last_id = position.get("id")
    if not isinstance(last_id, str):
        raise ValidationFailed([("cursor", "invalid cursor")], "invalid cursor")
    return value, last_id


def next_cursor(
    codec: CursorCodec, purpose: str, last: Document | None, field: str, more: bool
) -> str | None:
    if not more or last is None:
        return None
    value: Any = last["_id"] if field == "_id" else last.get(field)
    position: dict[str, Any] = {"id": last["_id"], "v": value}
    if isinstance(value, datetime):
        position["v"] = value.isoformat()
        position["t"] = "dt"
    return codec.encode(purpose, position)
