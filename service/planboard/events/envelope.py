"""The event envelope shared by the outbox, the relay and the consumers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from bson import ObjectId

# One Kafka topic per event family ("task.created" → "<prefix>task").
EVENT_FAMILIES = (
    "workspace",
    "project",
    "task",
    "comment",
    "attachment",
    "user",
    "webhook",
    "job",
    "mail",
)


def family_of(event_type: str) -> str:
    family, _, action = event_type.partition(".")
    if family not in EVENT_FAMILIES or not action:
        raise ValueError(f"unknown event type {event_type!r}")
    return family


def topic_for(prefix: str, event_type: str) -> str:
    return f"{prefix}{family_of(event_type)}"


def all_topics(prefix: str) -> list[str]:
    return [f"{prefix}{family}" for family in EVENT_FAMILIES]


@dataclass(frozen=True, slots=True)
class Event:
    """A domain event: ``type`` is ``<entity>.<action>``; ``key`` orders (project id)."""

    type: str
    key: str
    workspace_id: str | None
    data: dict[str, Any]
    id: str = field(default_factory=lambda: str(ObjectId()))
    occurred_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    actor_id: str | None = None
    request_id: str | None = None
    # The W3C trace context (``traceparent``/``tracestate``) of the request that caused
    # the event, stored with it in the outbox and sent as Kafka headers (not in the body).
    trace: dict[str, str] | None = None

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "id": self.id,
                "type": self.type,
                "key": self.key,
                "workspace_id": self.workspace_id,
                "occurred_at": self.occurred_at.isoformat().replace("+00:00", "Z"),
                "actor_id": self.actor_id,
                "request_id": self.request_id,
                "data": self.data,
            }
        )

    @classmethod
    def from_json(cls, raw: bytes) -> Event:
        body = orjson.loads(raw)
        return cls(
            id=str(body["id"]),
            type=str(body["type"]),
            key=str(body["key"]),
            workspace_id=body.get("workspace_id"),
            occurred_at=datetime.fromisoformat(str(body["occurred_at"]).replace("Z", "+00:00")),
            actor_id=body.get("actor_id"),
            request_id=body.get("request_id"),
            data=dict(body.get("data") or {}),
        )
