"""Ids are strings: ObjectId hex, time-ordered, safe in URLs and JSON."""

from __future__ import annotations

from datetime import UTC, datetime

from bson import ObjectId


def new_id() -> str:
    return str(ObjectId())


def utcnow() -> datetime:
    """Now, in UTC, at the millisecond precision MongoDB stores."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)
