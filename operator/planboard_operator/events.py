"""Kubernetes Events about our objects (posted by kopf's event poster, not level-filtered)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import kopf

from planboard_operator.outcomes import Event


def normal(obj: Mapping[str, Any], reason: str, message: str) -> None:
    kopf.event(cast(kopf.Body, obj), type="Normal", reason=reason, message=message)


def warning(obj: Mapping[str, Any], reason: str, message: str) -> None:
    kopf.event(cast(kopf.Body, obj), type="Warning", reason=reason, message=message)


def post(obj: Mapping[str, Any], *posted: Event | None) -> None:
    """Post the Events a decision module returned, in order (None: no Event)."""
    for event in posted:
        if event is not None:
            (warning if event.warning else normal)(obj, event.reason, event.message)
