"""Kubernetes Events about our objects (posted by kopf's event poster, not level-filtered)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import kopf


def normal(obj: Mapping[str, Any], reason: str, message: str) -> None:
    kopf.event(cast(kopf.Body, obj), type="Normal", reason=reason, message=message)


def warning(obj: Mapping[str, Any], reason: str, message: str) -> None:
    kopf.event(cast(kopf.Body, obj), type="Warning", reason=reason, message=message)
