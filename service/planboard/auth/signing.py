"""HMAC-SHA256-signed, expiring download URLs for attachment content.

The signature binds the attachment id, the variant (``original`` or ``thumbnail``) and
the expiry time, under a key derived from the service secret with its own purpose label
(a signature is useless as anything else, and other MACs are useless as one). The
check is constant-time; keys in ``PLANBOARD_PREVIOUS_SECRET_KEYS`` still verify URLs
signed before a rotation until they expire.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence

PURPOSE = b"planboard-attachment-url:v1:"
VARIANTS = ("original", "thumbnail")
MAX_SIGNATURE_CHARS = 64


def _key(secret: str) -> bytes:
    return hmac.new(PURPOSE, secret.encode(), hashlib.sha256).digest()


class DownloadSigner:
    def __init__(self, secret: str, previous: Sequence[str] = ()) -> None:
        self._keys = [_key(s) for s in (secret, *previous)]

    @staticmethod
    def _message(attachment_id: str, variant: str, expires: int) -> bytes:
        return f"{attachment_id}\x00{variant}\x00{expires}".encode("utf-8", "surrogatepass")

    def _mac(self, key: bytes, message: bytes) -> bytes:
        digest = hmac.new(key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=")

    def sign(self, attachment_id: str, variant: str, expires: int) -> str:
        """The signature for ``(attachment_id, variant)`` valid until ``expires`` (unix s)."""
        return self._mac(self._keys[0], self._message(attachment_id, variant, expires)).decode()

    def verify(
        self, attachment_id: str, variant: str, expires: int, signature: str, now: float
    ) -> bool:
        """True for an unexpired URL signed by the current or a previous key."""
        if expires <= now or variant not in VARIANTS or len(signature) > MAX_SIGNATURE_CHARS:
            return False
        given = signature.encode("ascii", "replace")
        message = self._message(attachment_id, variant, expires)
        matched = False
        for key in self._keys:  # every key is tried: the time does not tell which one matched
            matched |= hmac.compare_digest(given, self._mac(key, message))
        return matched
