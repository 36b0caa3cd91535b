"""The JSON shapes of projects, phases and tasks and their ETags: one definition for the
API, exports and the cached hot reads (services/hot_reads.py)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from planboard.services.projects import ordered_phases
from planboard.services.scheduling import DEFAULT_MODE
from planboard.services.tasks import TaskView


def digest(value: object) -> str:
    raw = value if isinstance(value, bytes) else orjson.dumps(value, default=str)
    return hashlib.sha256(raw).hexdigest()[:8]


def make_etag(resource_id: str, version: int, state: object = None) -> str:
    """A weak ETag ``W/"<version>-<id digest>-<state digest>"`` (api/conditional.py)."""
    return f'W/"{version}-{digest(resource_id.encode())}-{digest(state)}"'


def project_etag(project: Mapping[str, Any]) -> str:
    return make_etag(
        project["_id"], int(project.get("version", 1)), project.get("phases_version", 0)
    )


def phases_etag(project: Mapping[str, Any], items: list[dict[str, Any]]) -> str:
    return make_etag(project["_id"], int(project.get("phases_version", 0)), items)


def task_etag(view: TaskView) -> str:
    doc: Mapping[str, Any] = view.doc
    return make_etag(
        doc["_id"],
        int(doc.get("version", 1)),
        [view.phase, view.blocked_by_open, view.ready],
    )


def phase_out(phase: Mapping[str, Any], task_count: int | None = None) -> dict[str, Any]:
    out = {
        "id": phase["id"],
        "name": phase["name"],
        "estimate_hours": phase.get("estimate_hours"),
        "position": phase.get("position", 0),
    }
    if task_count is not None:
        out["task_count"] = task_count
    return out


def project_out(project: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": project["_id"],
        "key": project["key"],
        "name": project["name"],
        "description": project.get("description") or "",
        "workspace_id": project["workspace_id"],
        "status": project.get("status", "active"),
        "start_date": project.get("start_date"),
        "target_date": project.get("target_date"),
        "calendar": project.get("calendar"),
        "scheduling_mode": project.get("scheduling_mode") or DEFAULT_MODE,
        "target_users": project.get("target_users"),
        "project_type": project.get("project_type"),
        "phases": [phase_out(p) for p in ordered_phases(project)],
        "created_by": project.get("created_by"),
        "created_at": project.get("created_at"),
        "updated_at": project.get("updated_at"),
        "version": project.get("version", 1),
    }


def link_of(doc: Mapping[str, Any], blocker_id: str) -> dict[str, Any]:
    """The type and lag of ``doc``'s link to ``blocker_id``: FS with no lag unless stored
    (migration 14 gave every existing link its entry)."""
    stored = (doc.get("link_types") or {}).get(blocker_id) or {}
    return {
        "type": stored.get("type", "FS"),
        "lag": stored.get("lag", 0.0),
        "lag_unit": stored.get("lag_unit", "h"),
    }


def links_out(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``[{task_id, type, lag, lag_unit}]`` in ``blocked_by`` order."""
    return [{"task_id": b, **link_of(doc, str(b))} for b in doc.get("blocked_by") or []]


def task_out(view: TaskView, fields: Iterable[str] | None = None) -> dict[str, Any]:
    doc: Mapping[str, Any] = view.doc
    out: dict[str, Any] = {
        "id": doc["_id"],
        "key": doc["key"],
        "project_id": doc["project_id"],
        "workspace_id": doc["workspace_id"],
        "plan_ref": doc.get("plan_ref"),
        "title": doc["title"],
        "description": doc.get("description") or "",
        "checklist": [
            {"text": item["text"], "done": bool(item.get("done"))}
            for item in doc.get("checklist") or []
        ],
        "status": doc["status"],
        "complexity": doc.get("complexity"),
        "estimate_hours": doc.get("estimate_hours"),
        "phase": view.phase,
        "phase_id": doc.get("phase_id") if view.phase is not None else None,
        "assignee_id": doc.get("assignee_id"),
        "labels": list(doc.get("labels") or []),
        "due_date": doc.get("due_date"),
        "start_date": doc.get("start_date"),
        "priority": doc.get("priority"),
        "milestone": bool(doc.get("milestone")),
        "blocked_by": list(doc.get("blocked_by") or []),
        "dependencies": links_out(doc),
        "blocks": list(doc.get("blocks") or []),
        "blocked_by_open": view.blocked_by_open,
        "ready": view.ready,
        "version": doc.get("version", 1),
        "created_at": doc.get("created_at"),
        "updated_at": doc.get("updated_at"),
    }
    if fields:
        wanted = {"id", *fields}
        out = {name: value for name, value in out.items() if name in wanted}
    return out
