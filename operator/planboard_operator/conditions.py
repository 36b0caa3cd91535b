"""metav1.Condition lists: set a condition, keeping lastTransitionTime unless status changes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

Condition = dict[str, Any]

TRUE, FALSE, UNKNOWN = "True", "False", "Unknown"


def rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def status_of(value: bool | str) -> str:
    if isinstance(value, bool):
        return TRUE if value else FALSE
    if value not in (TRUE, FALSE, UNKNOWN):
        raise ValueError(f"condition status must be True, False or Unknown, got {value!r}")
    return value


def find(conditions: Sequence[Mapping[str, Any]], type_: str) -> Mapping[str, Any] | None:
    return next((c for c in conditions if c.get("type") == type_), None)


def is_true(conditions: Sequence[Mapping[str, Any]], type_: str) -> bool:
    found = find(conditions, type_)
    return found is not None and found.get("status") == TRUE


def set_condition(
    conditions: Sequence[Mapping[str, Any]],
    type_: str,
    status: bool | str,
    reason: str,
    message: str,
    *,
    now: datetime,
    generation: int | None = None,
) -> list[Condition]:
    """A new list with ``type_`` set; lastTransitionTime moves only if the status does."""
    value = status_of(status)
    previous = find(conditions, type_)
    changed = previous is None or previous.get("status") != value
    condition: Condition = {
        "type": type_,
        "status": value,
        "reason": reason,
        "message": message[:32768],
        "lastTransitionTime": (
            rfc3339(now) if changed or previous is None else previous["lastTransitionTime"]
        ),
    }
    if generation is not None:
        condition["observedGeneration"] = generation
    out = [dict(c) for c in conditions if c.get("type") != type_]
    out.append(condition)
    return sorted(out, key=lambda c: str(c["type"]))


def transitioned(
    before: Sequence[Mapping[str, Any]], after: Sequence[Mapping[str, Any]], type_: str
) -> bool:
    """Whether ``type_`` changed status (or appeared) between the two lists."""
    old, new = find(before, type_), find(after, type_)
    return new is not None and (old is None or old.get("status") != new.get("status"))


@dataclass(frozen=True, slots=True)
class Update:
    """One condition as a reconcile decided it; ``apply`` stamps time and generation."""

    type: str
    status: bool | str
    reason: str
    message: str


def apply(
    conditions: Sequence[Mapping[str, Any]],
    updates: Iterable[Update],
    *,
    now: datetime,
    generation: int | None = None,
) -> list[Condition]:
    """``set_condition`` for each update in turn."""
    out = [dict(c) for c in conditions]
    for update in updates:
        out = set_condition(
            out,
            update.type,
            update.status,
            update.reason,
            update.message,
            now=now,
            generation=generation,
        )
    return out
