"""Opaque, tamper-proof cursors: the one pagination helper every list uses.

A list pages through its collection by keyset (store/pagination.py): the rows after a
position ``(value, id)``. A cursor is that position as ``base64url(json) + "." + HMAC``;
the MAC binds it to the listing it came from (``purpose``: the list, its owner, sort and
filters), so a cursor cannot be forged, edited, or replayed into another list.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from planboard.domain.errors import ValidationFailed

MAX_CURSOR_LENGTH = 500


class CursorCodec:
    def __init__(self, secret: str) -> None:
        self._key = hashlib.sha256(b"planboard-cursor:" + secret.encode()).digest()

    def _mac(self, purpose: str, payload: bytes) -> str:
        digest = hmac.new(self._key, purpose.encode() + b"\x00" + payload, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:18]).decode().rstrip("=")

    def encode(self, purpose: str, position: dict[str, Any]) -> str:
        payload = base64.urlsafe_b64encode(orjson.dumps(position)).decode().rstrip("=")
        return f"{payload}.{self._mac(purpose, payload.encode())}"

    def decode(self, purpose: str, cursor: str) -> dict[str, Any]:
        invalid = ValidationFailed([("cursor", "invalid cursor")], "invalid cursor")
        if len(cursor) > MAX_CURSOR_LENGTH or cursor.count(".") != 1:
            raise invalid
        payload, mac = cursor.split(".")
        # bytes: compare_digest refuses str with non-ASCII characters (a TypeError, a 500)
        if not hmac.compare_digest(mac.encode(), self._mac(purpose, payload.encode()).encode()):
            raise invalid
        try:
            raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
            position = orjson.loads(raw)
        except (binascii.Error, ValueError):
            raise invalid from None
        if not isinstance(position, dict):
            raise invalid
        return position


def purpose_of(kind: str, owner: str, query: Mapping[str, object]) -> str:
    """A cursor is bound to its list, sort and filters: reusing it elsewhere is a 422."""
    shape = {k: v for k, v in query.items() if k not in ("cursor", "limit", "fields_")}
    return f"{kind}:{owner}:" + orjson.dumps(shape, option=orjson.OPT_SORT_KEYS).decode()


def _invalid() -> ValidationFailed:
    return ValidationFailed([("cursor", "invalid cursor")], "invalid cursor")


@dataclass(frozen=True, slots=True)
class Pager:
    """The cursors of one list: ``after`` reads the position a cursor points after,
    ``next`` writes the cursor of the page after ``last``."""

    codec: CursorCodec
    purpose: str

    def after(self, cursor: str | None) -> tuple[Any, str] | None:
        """The ``(sort value, id)`` the cursor points after; None for the first page."""
        if not cursor:
            return None
        position = self.codec.decode(self.purpose, cursor)
        value: Any = position.get("v")
        if position.get("t") == "dt" and isinstance(value, str):
            value = datetime.fromisoformat(value)
        last_id = position.get("id")
        if not isinstance(last_id, str):
            raise _invalid()
        return value, last_id

    def next(self, last: Mapping[str, Any] | None, field: str, more: bool) -> str | None:
        """The cursor after ``last`` (sorted by ``field``), or None when no page follows."""
        if not more or last is None:
            return None
        return self.at(last.get(field) if field != "_id" else last["_id"], last["_id"])

    def at(self, value: Any, last_id: str) -> str:
        """The cursor of the position ``(value, last_id)``."""
        position: dict[str, Any] = {"id": last_id, "v": value}
        if isinstance(value, datetime):
            position["v"] = value.isoformat()
            position["t"] = "dt"
        return self.codec.encode(self.purpose, position)
