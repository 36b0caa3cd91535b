"""Access JWTs and opaque secret tokens (refresh, reset, verification, PAT, invitation).

Access tokens are HS256 JWTs signed with the service secret; the algorithm is
pinned on decode, so ``alg: none`` and algorithm-confusion tokens are refused.
``iss``, ``aud``, ``exp``, ``iat``, ``sub`` and ``jti`` are required. A ``kid``
names the signing key, so a rotated-out key (``PLANBOARD_PREVIOUS_SECRET_KEYS``)
still verifies tokens it signed until they expire. A token whose lifetime (``exp`` -
``iat``) is longer than the configured one is refused, whoever signed it: a leaked key or
a misconfigured issuer cannot mint long-lived tokens.

Opaque tokens are ``<prefix>_<id>_<secret>``: the id finds the stored record,
only a SHA-256 of the secret is stored, and the check is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jwt

ALGORITHM = "HS256"
LEEWAY_S = 10


def key_id(secret: str) -> str:
    """A short, non-reversible name of a signing key."""
    return hashlib.sha256(b"planboard-kid:" + secret.encode()).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: str
    session_id: str
    token_id: str
    issued_at: int
    expires_at: int


class InvalidToken(Exception):
    """The token is malformed, forged, expired or otherwise unacceptable."""


def issue_access_token(
    *,
    secret: str,
    issuer: str,
    audience: str,
    user_id: str,
    session_id: str,
    ttl_s: int,
    now: float | None = None,
) -> tuple[str, AccessClaims]:
    issued = int(now if now is not None else time.time())
    claims = AccessClaims(
        user_id=user_id,
        session_id=session_id,
        token_id=secrets.token_hex(12),
        issued_at=issued,
        expires_at=issued + ttl_s,
    )
    payload = {
        "iss": issuer,
        "aud": audience,
        "sub": user_id,
        "sid": session_id,
        "jti": claims.token_id,
        "iat": claims.issued_at,
        "exp": claims.expires_at,
        "typ": "access",
    }
    token = jwt.encode(payload, secret, algorithm=ALGORITHM, headers={"kid": key_id(secret)})
    return token, claims


def decode_access_token(
    token: str, *, secrets_: Sequence[str], issuer: str, audience: str, max_ttl_s: int
) -> AccessClaims:
    """Verify signature, algorithm, issuer, audience, times and lifetime (at most
    ``max_ttl_s`` from ``iat`` to ``exp``); raise InvalidToken."""
    return _verify(token, secrets_, issuer, audience, max_ttl_s).claims


@dataclass(frozen=True, slots=True)
class _Verified:
    """A token that passed :func:`_verify`: its claims and the times checked again on a hit."""

    claims: AccessClaims
    iat: float  # the claim as signed (PyJWT compares int(iat), the last check the raw value)
    nbf: int | None


def _verify(
    token: str, secrets_: Sequence[str], issuer: str, audience: str, max_ttl_s: int
) -> _Verified:
    """The full verification (PyJWT is the verifier of record)."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise InvalidToken("malformed token") from exc
    if header.get("alg") != ALGORITHM:
        raise InvalidToken("unsupported token algorithm")
    kid = header.get("kid")
    keys = [s for s in secrets_ if key_id(s) == kid] if kid else []
    if not keys:
        raise InvalidToken("unknown signing key")
    try:
        payload: dict[str, Any] = jwt.decode(
            token,
            keys[0],
            algorithms=[ALGORITHM],
            issuer=issuer,
            audience=audience,
            leeway=LEEWAY_S,
            options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise InvalidToken("token expired") from exc
    except jwt.PyJWTError as exc:
        raise InvalidToken("invalid token") from exc
    if payload.get("typ") != "access" or not isinstance(payload.get("sid"), str):
        raise InvalidToken("not an access token")
    if payload["iat"] > time.time() + LEEWAY_S:
        raise InvalidToken("token issued in the future")
    if payload["exp"] - payload["iat"] > max_ttl_s:
        raise InvalidToken("token lifetime longer than allowed")
    claims = AccessClaims(
        user_id=str(payload["sub"]),
        session_id=str(payload["sid"]),
        token_id=str(payload["jti"]),
        issued_at=int(payload["iat"]),
        expires_at=int(payload["exp"]),
    )
    nbf = payload.get("nbf")
    return _Verified(claims, payload["iat"], None if nbf is None else int(nbf))


#: How many verified tokens :class:`VerifiedTokens` keeps, and the longest it keeps.
VERIFIED_TOKENS_MAX = 10_000
VERIFIED_TOKEN_MAX_CHARS = 4096


class VerifiedTokens:
    """Access tokens that already passed the full verification, mapped to their claims.

    A JWT is checked on every authenticated request, and the same token comes back on each
    of a client's requests; verifying it again (base64 and JSON decoding, an HMAC, the
    claim checks) is most of an authenticated request's fixed cost. Everything but the time
    rules depends only on the token's bytes and on the verification context (the keys,
    issuer, audience and longest lifetime, which are part of the cache key), so a hit checks
    only those, the same way and in the same order as the full verification: ``iat`` (and
    ``nbf``, if any) not in the future and ``exp`` not past, with :data:`LEEWAY_S`. An
    expired token is refused on a hit exactly as on a miss. A token is cached only after
    it passed; a failure is never cached, so a changed byte (a forged or altered token) is
    a miss and fully verified. Bounded: at most ``max_entries`` tokens (the oldest go
    first), none longer than ``max_token_chars``.
    """

    def __init__(
        self,
        max_entries: int = VERIFIED_TOKENS_MAX,
        max_token_chars: int = VERIFIED_TOKEN_MAX_CHARS,
    ) -> None:
        self.max_entries = max_entries
        self.max_token_chars = max_token_chars
        self._entries: dict[tuple[str, tuple[str, ...], str, str, int], _Verified] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()

    def verify(
        self, token: str, *, secrets_: Sequence[str], issuer: str, audience: str, max_ttl_s: int
    ) -> AccessClaims:
        """What :func:`decode_access_token` answers for ``token``: claims or InvalidToken."""
        key = (token, tuple(secrets_), issuer, audience, max_ttl_s)
        entry = self._entries.get(key)
        if entry is None:
            entry = _verify(token, secrets_, issuer, audience, max_ttl_s)  # raises: not kept
            if len(token) <= self.max_token_chars and self.max_entries > 0:
                while len(self._entries) >= self.max_entries:
                    del self._entries[next(iter(self._entries))]
                self._entries[key] = entry
            return entry.claims
        now = time.time()
        # PyJWT's order and comparisons (iat, nbf: "invalid token"; exp: "token expired"),
        # then decode_access_token's own iat check.
        if int(entry.iat) > now + LEEWAY_S or (
            entry.nbf is not None and entry.nbf > now + LEEWAY_S
        ):
            raise InvalidToken("invalid token")
        if entry.claims.expires_at <= now - LEEWAY_S:
            self._entries.pop(key, None)  # it will never pass again
            raise InvalidToken("token expired")
        if entry.iat > now + LEEWAY_S:
            raise InvalidToken("token issued in the future")
        return entry.claims


#: The process's verified tokens (the key includes the verification context, so apps with
#: different settings in one process never share an answer).
verified_tokens = VerifiedTokens()


def verify_access_token(
    token: str, *, secrets_: Sequence[str], issuer: str, audience: str, max_ttl_s: int
) -> AccessClaims:
    """:func:`decode_access_token`, answered from :data:`verified_tokens` when it can be."""
    return verified_tokens.verify(
        token, secrets_=secrets_, issuer=issuer, audience=audience, max_ttl_s=max_ttl_s
    )


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)


@dataclass(frozen=True, slots=True)
class OpaqueToken:
    prefix: str
    id: str
    secret: str

    def __str__(self) -> str:
        return f"{self.prefix}_{self.id}_{self.secret}"

    @property
    def secret_hash(self) -> str:
        return hash_secret(self.secret)


def new_opaque_token(prefix: str, token_id: str) -> OpaqueToken:
    return OpaqueToken(prefix, token_id, secrets.token_urlsafe(32))


def parse_opaque_token(value: str, prefix: str) -> OpaqueToken | None:
    """Split ``<prefix>_<id>_<secret>``; None if it is not of that shape."""
    if len(value) > 200 or not value.startswith(prefix + "_"):
        return None
    rest = value[len(prefix) + 1 :]
    token_id, sep, secret = rest.partition("_")
    if not sep or not token_id.isalnum() or len(token_id) > 40 or len(secret) < 20:
        return None
    return OpaqueToken(prefix, token_id, secret)
