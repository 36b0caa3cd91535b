"""The records behind ``Idempotency-Key`` (api/idempotency.py has the HTTP side).

A request claims its key's record (``running``, unique ``_id``) before its handler runs;
a finished 2xx answer is stored on it for 24 h, a failure releases it. A record whose
request crashed (``running`` past its lease) or that expired is taken over.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from planboard.domain.errors import Conflict, ValidationFailed
from planboard.store import idempotency as store
from planboard.store.document import Document
from planboard.store.ids import new_id, utcnow

HEADER = "Idempotency-Key"
TTL = timedelta(hours=24)
LEASE = timedelta(minutes=5)  # a claim older than this belongs to a crashed request


@dataclass(frozen=True, slots=True)
class Claimed:
    """What claiming a key found: the claim to hold (run the handler), the stored answer
    to replay, or that a duplicate is still running."""

    record_id: str
    claim: str | None = None
    replay: Mapping[str, Any] | None = None
    running: bool = False


async def claim(
    db: AsyncDatabase[Document],
    record_id: str,
    *,
    request_hash: str,
    user_id: str,
    method: str,
    path: str,
) -> Claimed:
    """Claim the key's record for this request (409 while another holds it, 422 when the
    key was used for a different request)."""
    now = utcnow()
    mine = new_id()
    fresh = {
        "state": "running",
        "claim": mine,
        "request_hash": request_hash,
        "user_id": user_id,
        "method": method,
        "path": path,
        "created_at": now,
        "locked_until": now + LEASE,
        "expires_at": now + TTL,
    }
    if await store.claim(db, {"_id": record_id, **fresh}):
        return Claimed(record_id, claim=mine)
    existing: Mapping[str, Any] | None = await store.get(db, record_id)
    expired = existing is not None and existing["expires_at"] <= now
    abandoned = (
        existing is not None and existing["state"] == "running" and existing["locked_until"] <= now
    )
    if existing is None or expired or abandoned:
        taken = existing is not None and await store.take_over(db, dict(existing), fresh)
        if not taken:
            raise Conflict("a request with this Idempotency-Key is in progress; retry later")
        return Claimed(record_id, claim=mine)
    if existing["request_hash"] != request_hash:
        raise ValidationFailed(
            [(HEADER, "this key was used for a different request; use a new key")],
            "Idempotency-Key reused with a different request",
        )
    if existing["state"] == "running":
        return Claimed(record_id, running=True)
    return Claimed(record_id, replay=existing)


async def release(db: AsyncDatabase[Document], claimed: Claimed) -> None:
    """Give the key back (the request failed: a fixed retry may use it)."""
    assert claimed.claim is not None
    await store.release(db, claimed.record_id, claimed.claim)


async def complete(
    db: AsyncDatabase[Document], claimed: Claimed, response: Mapping[str, Any]
) -> None:
    """Store the answer a retry gets back."""
    assert claimed.claim is not None
    await store.complete(db, claimed.record_id, claimed.claim, dict(response), utcnow())
