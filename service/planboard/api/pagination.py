"""Opaque, tamper-proof cursors: the one pagination helper every list uses.

A cursor is ``base64url(json(position)) + "." + HMAC``; the MAC binds it to the
listing it came from (``purpose``), so a cursor cannot be forged, edited, or
replayed into another list.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
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
