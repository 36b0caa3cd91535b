"""The one JSON encoder of values Planboard sends: the API's answers (api/json.py) and
the cached values they are served from (services/cache.py), so a cached answer reads
byte for byte like a fresh one. Times are RFC 3339 UTC with milliseconds, ending in
``Z``; dates are ISO dates; sets become sorted lists."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import orjson


def json_default(value: Any) -> Any:
    """orjson's ``default`` for what it does not encode itself the way we want."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"cannot serialize {type(value).__name__}")


def dumps(value: Any) -> bytes:
    """``value`` as JSON bytes."""
    return orjson.dumps(value, default=json_default, option=orjson.OPT_PASSTHROUGH_DATETIME)
