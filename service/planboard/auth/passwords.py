"""Password hashing (argon2id) and the minimum-strength rule."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MAX_PASSWORD_LENGTH = 256  # argon2 hashes anything, but unbounded input is a DoS lever

# A few of the most common passwords; length alone stops most of the rest.
COMMON = frozenset(
    {
        "password123",
        "password1234",
        "1234567890",
        "12345678910",
        "qwertyuiop",
        "iloveyou123",
        "administrator",
        "letmein123",
        "welcome123",
        "passw0rd123",
        "changeme123",
        "qwerty12345",
        "abc1234567",
        "0987654321",
        "planboard123",
    }
)

_hasher = PasswordHasher()  # argon2id, RFC 9106 low-memory profile defaults
# A real hash to verify against when the account does not exist, so an unknown
# email costs the same time as a wrong password.
_DUMMY_HASH = _hasher.hash("planboard-timing-equalizer")


def password_problems(
    password: str, *, min_length: int, email: str = "", name: str = ""
) -> list[str]:
    """Why a password is too weak (empty list: acceptable)."""
    problems = []
    if len(password) < min_length:
        problems.append(f"must be at least {min_length} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        problems.append(f"must be at most {MAX_PASSWORD_LENGTH} characters")
    lowered = password.lower()
    if lowered in COMMON:
        problems.append("is too common")
    if len(set(password)) < 4:
        problems.append("must use at least 4 different characters")
    local = email.split("@", 1)[0].lower()
    if len(local) >= 4 and local in lowered:
        problems.append("must not contain your email address")
    if name and len(name) >= 4 and name.lower() in lowered:
        problems.append("must not contain your name")
    return problems


async def hash_password(password: str) -> str:
    """argon2id hash, computed off the event loop (it is deliberately slow)."""
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(stored_hash: str | None, password: str) -> bool:
    """Constant-cost check; a missing hash still runs a full verification."""

    def check() -> bool:
        try:
            return _hasher.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(check)


def needs_rehash(stored_hash: str) -> bool:
    return _hasher.check_needs_rehash(stored_hash)
